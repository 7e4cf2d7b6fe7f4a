"""The parser's signed callback: verify, refuse replays, and wake the parse stage once.

Protocol. Each job has its own secret (``Job.webhook_secret``), sent to the parser with the upload
as the form field ``webhook_secret``. A callback carries ``X-Webhook-Timestamp`` (Unix seconds) and
``X-Webhook-Signature: sha256=<hex>``, the HMAC-SHA256 under that secret of
``<timestamp>.<raw body>`` — the raw body with the timestamp bound to it, so an old body cannot be
re-sent under a fresh time. We accept a delivery when:

1. the signature matches (constant-time compare) — else 401 ``WEBHOOK_BAD_SIGNATURE``;
2. the timestamp is within ``WEBHOOK_TOLERANCE_SECONDS`` of now — else 401 ``WEBHOOK_STALE``;
3. this exact signature was never seen — else 409 ``WEBHOOK_REPLAY``, recorded as an Event.

An authentic delivery that repeats news already accepted (the same parser job and status, sent
again with a new timestamp, as a parser retrying a callback does) answers 200 and changes nothing.
A callback is only a wake-up: the parse stage reads the result from the parser itself, and the
sweeper's polling finishes jobs whose callback never comes (or that the parser did not sign).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction

from ingestion import services
from ingestion.errors import PermanentError
from ingestion.models import Event, Job, WebhookDelivery
from ingestion.pipeline import parse
from ingestion.statuses import Status

logger = logging.getLogger(__name__)

# Parser job statuses that mean "the result is ready to fetch" (success or failure).
FINAL_PARSER_STATUSES = {"SUCCESS", "ERROR"}


class WebhookRefused(PermanentError):
    """A callback we do not act on; ``http_status`` is what the caller is answered."""

    def __init__(self, code: str, message: str, http_status: int):
        super().__init__(code, message)
        self.http_status = http_status


@dataclass
class WebhookOutcome:
    result: str  # "accepted" | "duplicate" | "replay"
    woke_parse_stage: bool = False


def webhook_signature(*, body: bytes, timestamp: str, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _verify(job: Job, body: bytes, timestamp: str, signature: str, now: float) -> None:
    if not timestamp or not signature:
        raise WebhookRefused("WEBHOOK_UNSIGNED", "The callback has no X-Webhook-Timestamp or X-Webhook-Signature "
                             "header; unsigned callbacks are ignored (the job is finished by polling).", 401)
    expected = webhook_signature(body=body, timestamp=timestamp, secret=job.webhook_secret)
    if not job.webhook_secret or not hmac.compare_digest(signature.encode(), expected.encode()):
        logger.warning("webhook for job %s refused: bad signature", job.pk)
        raise WebhookRefused("WEBHOOK_BAD_SIGNATURE", "The callback's signature does not match this job's secret.",
                             401)
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        age = float("inf")
    if age > settings.WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookRefused("WEBHOOK_STALE", f"The callback's timestamp is more than "
                             f"{settings.WEBHOOK_TOLERANCE_SECONDS} seconds from our clock; it is refused as a "
                             "possible replay. Check the sender's clock.", 401)


def llamaparse_webhook_receive(*, job_id, body: bytes, timestamp: str, signature: str,
                               now: float | None = None) -> WebhookOutcome:
    """Verify a parser callback and, once per parser result, wake the job's parse stage.

    Safe to call any number of times with the same delivery: the second call is a refused replay.
    """
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        raise WebhookRefused("WEBHOOK_UNKNOWN_JOB", "No job has this id; check the callback URL.", 404)
    _verify(job, body, timestamp, signature, time.time() if now is None else now)
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise WebhookRefused("WEBHOOK_MALFORMED", "The callback body is not a JSON object.", 400)
    parse_job_id = str(payload.get("job_id") or "")[:100]
    reported = str(payload.get("status") or "")[:20]
    if parse_job_id and job.parse_job_id and parse_job_id != job.parse_job_id:
        raise WebhookRefused("WEBHOOK_WRONG_JOB", "The callback is about another parser job than this job's.", 409)

    signature_sha = hashlib.sha256(signature.encode()).hexdigest()
    with transaction.atomic():
        # The job row lock serialises deliveries for one job, so two copies arriving together
        # cannot both be taken for the first.
        job = Job.objects.select_for_update().get(pk=job.pk)
        if WebhookDelivery.objects.filter(signature_sha256=signature_sha).exists():
            return _replay(job, reported)
        seen = WebhookDelivery.objects.filter(job=job, parse_job_id=parse_job_id or job.parse_job_id,
                                              reported_status=reported, accepted=True).exists()
        try:
            with transaction.atomic():
                WebhookDelivery.objects.create(job=job, signature_sha256=signature_sha,
                                               parse_job_id=parse_job_id or job.parse_job_id,
                                               reported_status=reported, accepted=not seen)
        except IntegrityError:
            return _replay(job, reported)
        if seen:
            services.event_record(job=job, type="webhook_duplicate", stage="parse",
                                  message=f"The parser repeated its {reported or 'status'} callback; nothing to do.",
                                  payload={"status": reported})
            return WebhookOutcome("duplicate")
        services.event_record(job=job, type="webhook_received", stage="parse",
                              message=f"The parser reported {reported or 'an update'}.", payload={"status": reported})
        woke = (reported in FINAL_PARSER_STATUSES and job.status in (Status.UPLOADED, Status.PARSE_QUEUED)
                and not job.lease_owner)
        if woke:
            # Only a wake-up: the parse stage reads the result itself, so a callback racing a poll
            # still finishes the job once.
            job.next_attempt_at = None
            job.save(update_fields=["next_attempt_at", "updated_at"])
            services.job_enqueue(job_id=job.id, stage="parse")
        if reported in FINAL_PARSER_STATUSES:
            parse.notify_parse_done(job.id)  # a worker polling this parser job wakes at once (on commit)
        return WebhookOutcome("accepted", woke_parse_stage=woke)


def _replay(job: Job, reported: str) -> WebhookOutcome:
    services.event_record(job=job, type="webhook_replay_refused", stage="parse", code="WEBHOOK_REPLAY",
                          severity=Event.Severity.WARNING,
                          message="A callback already received was sent again and refused.",
                          payload={"status": reported})
    return WebhookOutcome("replay")
