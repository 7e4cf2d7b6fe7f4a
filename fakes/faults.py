"""Faults on demand for the fakes: latency, errors, 429s, hangs, failed parse jobs, lost or doubled webhooks.

Defaults come from environment variables (``FAKE_<KNOB>``, e.g. ``FAKE_ERROR_RATE=0.2``); a running
system can be changed through the control endpoint (``/fakes/control/faults/<service>/``), which
stores the override in the database so every web process sees it.

Every request (and every parse job, at upload) takes its random choices from one ``Draw``. With a
``seed`` (``FAKE_SEED`` or the control endpoint) a request's draw comes from the seed, the service
and the request's sequence number, counted in the database: the same requests in the same order
meet the same faults, in one process or many. Each change through the control endpoint restarts
the count, so setting the same knobs again replays the run.
"""
from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import asdict, dataclass, fields

from django.db import connection

KNOBS_HELP = {
    "latency_ms": "fixed delay added to every request",
    "jitter_ms": "random extra delay, uniform in [0, jitter_ms]",
    "error_rate": "share of requests answered 500/502/503",
    "rate_limit_rate": "share of requests answered 429 with Retry-After",
    "retry_after_seconds": "Retry-After sent with a 429",
    "timeout_rate": "share of requests that hang for hang_seconds (past the client's timeout)",
    "hang_seconds": "how long a hanging request hangs",
    "parse_error_rate": "share of parse jobs that end ERROR (LlamaParse only)",
    "parse_error_code": "error_code of a parse job ended ERROR by parse_error_rate (LlamaParse only)",
    "parse_seconds": "time a parse job stays PENDING (LlamaParse only)",
    "parse_cancel_rate": "share of parse jobs the service cancels: they end CANCELED (LlamaParse only)",
    "webhook_drop_rate": "share of webhooks never sent (LlamaParse only)",
    "webhook_duplicate_rate": "share of webhooks sent twice (LlamaParse only)",
    "malformed_rate": "share of successful answers with a broken body",
    "quota_exhausted": "1: the account is out of quota, every request is answered 429 insufficient_quota (OpenAI only)",
    "seed": "integer: makes every draw repeatable (empty or null: truly random)",
}
RATE_KNOBS = ("error_rate", "rate_limit_rate", "timeout_rate", "parse_error_rate", "parse_cancel_rate", "webhook_drop_rate",
              "webhook_duplicate_rate", "malformed_rate")


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after_seconds: float = 1.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    parse_error_rate: float = 0.0
    parse_error_code: str = "INTERNAL_SERVER_ERROR"
    parse_seconds: float = 0.0
    parse_cancel_rate: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    malformed_rate: float = 0.0
    quota_exhausted: float = 0.0
    seed: int | None = None

    @classmethod
    def from_env(cls) -> "Faults":
        values = {f.name: os.environ.get(f"FAKE_{f.name.upper()}") for f in fields(cls)}
        return cls().merged({name: raw for name, raw in values.items() if raw not in (None, "")})

    def merged(self, override: dict) -> "Faults":
        """These faults with ``override`` applied; a bad knob or value raises ValueError with a readable reason."""
        data = asdict(self)
        for key, value in override.items():
            if key not in data:
                raise ValueError(f"unknown fault knob '{key}'; known: {', '.join(sorted(data))}")
            data[key] = _knob_value(key, value)
        return Faults(**data)

    def as_dict(self) -> dict:
        return asdict(self)


def _knob_value(key: str, value):
    if key == "seed":
        if value in (None, ""):
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"seed must be an integer, not {value!r}") from None
    if key == "parse_error_code":
        if not isinstance(value, str) or not value.strip():
            raise ValueError("parse_error_code must be a non-empty string such as INTERNAL_SERVER_ERROR")
        return value.strip()
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a number, not {value!r}") from None
    if number < 0 or number != number:
        raise ValueError(f"{key} must be zero or more, not {value!r}")
    if key in RATE_KNOBS and number > 1:
        raise ValueError(f"{key} is a share of requests: give a number from 0 to 1, not {value!r}")
    return number


def current(service: str) -> Faults:
    """Faults in force for ``service``: environment defaults plus the stored run-time override."""
    from fakes.models import FaultSettings

    base = Faults.from_env()
    row = FaultSettings.objects.filter(service=service).first()
    return base.merged(row.config) if row else base


class Draw:
    """The random choices of one request (or one parse job), all from one stream."""

    _unseeded = random.Random()
    _unseeded_lock = threading.Lock()

    def __init__(self, rng: random.Random | None = None, sequence: int | None = None):
        self._rng = rng
        self.sequence = sequence

    def _random(self) -> float:
        if self._rng is not None:
            return self._rng.random()
        with self._unseeded_lock:
            return self._unseeded.random()

    def roll(self, rate: float) -> bool:
        """True with probability ``rate``. Always draws, so later choices do not depend on earlier rates."""
        value = self._random()
        return value < rate

    def uniform(self, upper: float) -> float:
        return self._random() * upper

    def choice(self, options: list):
        return options[min(int(self._random() * len(options)), len(options) - 1)]


def next_sequence(service: str) -> int:
    """The next number of ``service``'s seeded sequence, counted atomically in the database."""
    from fakes.models import FaultSettings

    sql = f"UPDATE {FaultSettings._meta.db_table} SET draws = draws + 1 WHERE service = %s RETURNING draws"
    with connection.cursor() as cursor:
        cursor.execute(sql, [service])
        row = cursor.fetchone()
        if row is None:
            FaultSettings.objects.get_or_create(service=service)
            cursor.execute(sql, [service])
            row = cursor.fetchone()
    return int(row[0])


def draw_for(service: str, faults: Faults) -> Draw:
    """A fresh draw: seeded by (seed, service, sequence number) when a seed is set, random otherwise."""
    if faults.seed is None:
        return Draw()
    sequence = next_sequence(service)
    return Draw(random.Random(f"{faults.seed}:{service}:{sequence}"), sequence)


def sleep_ms(milliseconds: float) -> None:
    if milliseconds > 0:
        time.sleep(milliseconds / 1000.0)
