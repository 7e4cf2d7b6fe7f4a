"""Faults on demand for the fakes: latency, errors, 429s, hangs, failed parse jobs, lost or doubled webhooks.

Defaults come from environment variables (``FAKE_<KNOB>``, e.g. ``FAKE_ERROR_RATE=0.2``); a running
system can be changed through the control endpoint (``/fakes/control/faults/``), which stores the
override in the database so every web process sees it. ``FAKE_SEED`` makes a faulty run
repeatable: each process draws from its own seeded stream.
"""
from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import asdict, dataclass, fields

KNOBS_HELP = {
    "latency_ms": "fixed delay added to every request",
    "jitter_ms": "random extra delay, uniform in [0, jitter_ms]",
    "error_rate": "share of requests answered 500/502/503",
    "rate_limit_rate": "share of requests answered 429 with Retry-After",
    "retry_after_seconds": "Retry-After sent with a 429",
    "timeout_rate": "share of requests that hang for hang_seconds (past the client's timeout)",
    "hang_seconds": "how long a hanging request hangs",
    "parse_error_rate": "share of parse jobs that end ERROR (LlamaParse only)",
    "parse_seconds": "time a parse job stays PENDING (LlamaParse only)",
    "webhook_drop_rate": "share of webhooks never sent (LlamaParse only)",
    "webhook_duplicate_rate": "share of webhooks sent twice (LlamaParse only)",
    "malformed_rate": "share of successful answers with a broken body",
}


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
    parse_seconds: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    malformed_rate: float = 0.0

    @classmethod
    def from_env(cls) -> "Faults":
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"FAKE_{f.name.upper()}")
            if raw not in (None, ""):
                values[f.name] = float(raw)
        return cls(**values)

    def merged(self, override: dict) -> "Faults":
        data = asdict(self)
        for key, value in override.items():
            if key not in data:
                raise ValueError(f"unknown fault knob '{key}'; known: {', '.join(sorted(data))}")
            data[key] = float(value)
        return Faults(**data)

    def as_dict(self) -> dict:
        return asdict(self)


_rng_lock = threading.Lock()
_rng = random.Random(int(os.environ["FAKE_SEED"])) if os.environ.get("FAKE_SEED") else random.Random()


def roll(rate: float) -> bool:
    """True with probability ``rate``, from the process's (optionally seeded) stream."""
    if rate <= 0:
        return False
    with _rng_lock:
        return _rng.random() < rate


def uniform(upper: float) -> float:
    with _rng_lock:
        return _rng.uniform(0, upper)


def choice(options: list):
    with _rng_lock:
        return _rng.choice(options)


def current(service: str) -> Faults:
    """Faults in force for ``service``: environment defaults plus the stored run-time override."""
    from fakes.models import FaultSettings

    base = Faults.from_env()
    row = FaultSettings.objects.filter(service=service).first()
    return base.merged(row.config) if row else base


def delay(faults: Faults) -> None:
    total = faults.latency_ms + (uniform(faults.jitter_ms) if faults.jitter_ms else 0.0)
    if total > 0:
        time.sleep(total / 1000.0)
