"""The parser's callback: a wake-up for the parse stage, addressed to one job by an unguessable URL.

Protocol (LlamaParse's v1 ``webhook_url``). The parser POSTs the finished job's result to the URL it
was given at upload, unsigned: the body is ``{"txt", "md", "json": [pages], "images"}``, with no job
id, no signature and no way for us to give it a secret. So the URL itself is the credential:
``/api/v1/webhooks/llamaparse/<job id>/<token>/``, the token being the job's own random
``webhook_secret`` (128 bits; a new one for every job), compared in constant time.

Nothing in the body is trusted or even read: the result can be megabytes, and anyone who learnt the
URL could send anything. A callback only wakes the job's parse stage, which then asks the parser for
the result itself, with our API key; polling finishes jobs whose callback never comes. So a forged or
repeated callback can at most cause one extra status request.
"""
from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from django.db import transaction

from ingestion import services
from ingestion.errors import PermanentError
from ingestion.models import Event, Job
from ingestion.pipeline import parse
from ingestion.statuses import STAGES

logger = logging.getLogger(__name__)

# A job due for its parse stage waits for the parser: a callback may wake it.
WAITING_FOR_PARSER = STAGES["parse"].entry


class WebhookRefused(PermanentError):
    """A callback we do not act on; ``http_status`` is what the caller is answered."""

    def __init__(self, code: str, message: str, http_status: int):
        super().__init__(code, message)
        self.http_status = http_status


@dataclass
class WebhookOutcome:
    result: str  # "accepted" | "duplicate" | "ignored"
    woke_parse_stage: bool = False


def _job_for(job_id, token: str) -> Job:
    job = Job.objects.filter(pk=job_id).first()
    # One answer for an unknown job and a wrong token: the address tells a prober nothing.
    if job is None or not job.webhook_secret or not hmac.compare_digest(token.encode(), job.webhook_secret.encode()):
        if job is not None:
            logger.warning("parser callback for job %s refused: wrong token", job.pk)
        raise WebhookRefused("WEBHOOK_UNKNOWN_JOB", "No job waits for a callback at this address; check the "
                             "callback URL.", 404)
    return job


def llamaparse_webhook_receive(*, job_id, token: str) -> WebhookOutcome:
    """Wake the job's parse stage once per parser job. Safe to call any number of times."""
    job = _job_for(job_id, token)
    with transaction.atomic():
        # The job row lock serialises callbacks for one job: two copies arriving together are one wake-up.
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.status not in WAITING_FOR_PARSER:
            return WebhookOutcome("ignored")  # parsed already (by a poll), cancelled, or further on
        if Event.objects.filter(job=job, type="webhook_received", payload__parse_job_id=job.parse_job_id).exists():
            return WebhookOutcome("duplicate")  # the parser retrying its callback: nothing more to do
        services.event_record(job=job, type="webhook_received", stage="parse",
                              message="The parser called back; fetching the result.",
                              payload={"parse_job_id": job.parse_job_id})
        woke = not job.lease_owner
        if woke:
            # Parked between polls: run the stage now rather than at its next poll time.
            job.next_attempt_at = None
            job.save(update_fields=["next_attempt_at", "updated_at"])
            services.job_enqueue(job_id=job.id, stage="parse")
        parse.notify_parse_done(job.id)  # a worker polling this parser job asks at once (on commit)
        return WebhookOutcome("accepted", woke_parse_stage=woke)
