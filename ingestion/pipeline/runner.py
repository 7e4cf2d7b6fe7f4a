"""The one stage runner: claim a job row, lease it, run one stage, record events, advance or retry.

The job row in PostgreSQL is the truth; a queue message only says "look at this job". Any message
may arrive twice, late or never (the sweeper covers "never"), so every step checks the row first.
"""
from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from datetime import timedelta

import psutil

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from ingestion import services
from ingestion.errors import PermanentError, PipelineError, TransientError
from ingestion.models import Event, Job
from ingestion.pipeline import chunk, embed, finalize, parse, validate
from ingestion.statuses import QUEUED_STATUS, STAGE_ORDER, STAGES, TERMINAL, Status

logger = logging.getLogger(__name__)

STAGE_FUNCTIONS = {"parse": parse.run, "validate": validate.run, "chunk": chunk.run, "embed": embed.run,
                   "finalize": finalize.run}


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def lease_holder_is_dead(lease_owner: str) -> bool:
    """True if the lease was taken by a process on this host that no longer runs (killed mid-stage).

    Such a lease need not be waited out: nobody will renew it. Holders on other hosts are judged by
    their lease expiry alone.
    """
    host, _, rest = (lease_owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not psutil.pid_exists(int(pid))


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    ceiling = min(settings.RETRY_MAX_SECONDS, settings.RETRY_BASE_SECONDS * (2 ** max(0, attempt - 1)))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _total_progress(stage: str, stage_pct: int) -> int:
    done = sum(STAGES[name].weight for name in STAGE_ORDER[: STAGE_ORDER.index(stage)])
    return min(100, done + STAGES[stage].weight * stage_pct // 100)


class StageContext:
    """What a stage may use while it runs: event recording, lease renewal, call counting."""

    def __init__(self, job: Job, stage: str, owner: str):
        self.job, self.stage, self.owner = job, stage, owner
        self.provider_calls = 0
        self._last_renewal = time.monotonic()

    def event(self, type: str, *, message: str = "", payload: dict | None = None) -> None:
        services.event_record(job=self.job, type=type, stage=self.stage, message=message, payload=payload)

    def renew_lease(self, force: bool = False) -> bool:
        """Extend the lease if a third of it has passed. False if another worker took the job over."""
        if not force and time.monotonic() - self._last_renewal < settings.JOB_LEASE_SECONDS / 3:
            return True
        self._last_renewal = time.monotonic()
        return bool(Job.objects.filter(pk=self.job.pk, lease_owner=self.owner).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)))


class LeaseKeeper(threading.Thread):
    """Renews the lease in the background while a long stage (a big embedding batch) runs."""

    def __init__(self, ctx: StageContext):
        super().__init__(daemon=True, name=f"lease-{ctx.job.pk}")
        self.ctx = ctx
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(settings.JOB_LEASE_SECONDS / 3):
                try:
                    self.ctx.renew_lease(force=True)
                except Exception:  # a blip (no free connection, a restart): try again at the next turn
                    logger.exception("lease renewal failed for job %s; trying again", self.ctx.job.pk)
                    connection.close()  # a broken connection is opened afresh next time
        finally:
            connection.close()


def _claim(job_id, stage: str, owner: str) -> tuple[Job | None, str]:
    spec = STAGES[stage]
    now = timezone.now()
    with transaction.atomic():
        job = (Job.objects.select_for_update(skip_locked=True, of=("self",)).select_related("document")
               .filter(pk=job_id).first())
        if job is None:
            return None, "busy" if Job.objects.filter(pk=job_id).exists() else "missing"
        if job.status not in spec.entry:
            return None, "cancelled" if job.status == Status.CANCELLED else "not_due_for_stage"
        if (job.lease_owner and job.lease_expires_at and job.lease_expires_at > now
                and not lease_holder_is_dead(job.lease_owner)):
            return None, "leased"
        if job.next_attempt_at and job.next_attempt_at > now:
            return None, "retry_scheduled"
        recovered = bool(job.lease_owner)  # the previous holder's lease expired: it died mid-stage
        if recovered and job.attempts >= settings.JOB_MAX_ATTEMPTS:
            # The attempts are used up and the last one ended with its worker gone (killed, out of memory,
            # the host restarted): a document that takes its worker down would otherwise be taken up again
            # for ever, since only a stage that fails in Python counts its attempts against the limit.
            _give_up_interrupted(job, stage)
            return None, "interrupted_too_often"
        job.lease_owner = owner
        job.lease_expires_at = now + timedelta(seconds=settings.JOB_LEASE_SECONDS)
        job.next_attempt_at = None
        job.attempts += 1
        if spec.running and job.status != spec.running:
            services.job_set_status(job=job, status=spec.running)
        job.stage_times.setdefault(stage, {})["started"] = now.isoformat()
        job.stage_times[stage].pop("finished", None)
        job.progress = {"stage": stage, "stage_pct": 0, "total_pct": _total_progress(stage, 0)}
        job.save()
        services.event_record(job=job, type="stage_started", stage=stage,
                              message=f"{stage} started (attempt {job.attempts})",
                              payload={"attempt": job.attempts, "worker": owner, "recovered_lease": recovered})
    return job, "claimed"


def _give_up_interrupted(job: Job, stage: str) -> None:
    """Fail a job whose stage never came back from its last attempts (inside the claim's transaction)."""
    message = (f"The {stage} stage has used its {job.attempts} attempts, and the last one stopped without finishing: "
               "its worker was killed (out of memory, a timeout, a restart). Check the worker logs and memory "
               "around this document, then retry it.")
    job.lease_owner, job.lease_expires_at, job.next_attempt_at = "", None, None
    # retryable: it gave up after its attempts (the dashboard counts it among dead-lettered jobs)
    job.last_error_code, job.last_error_message, job.last_error_retryable = "STAGE_INTERRUPTED", message, True
    services.job_set_status(job=job, status=STAGES[stage].failed)
    job.save()
    services.event_record(job=job, type="stage_failed", stage=stage, code="STAGE_INTERRUPTED",
                          severity=Event.Severity.ERROR, message=message, payload={"attempts": job.attempts})


def _release_ended(current: Job, owner: str) -> str:
    if current.lease_owner == owner:
        current.lease_owner, current.lease_expires_at = "", None
        current.save(update_fields=["lease_owner", "lease_expires_at", "updated_at"])
    return current.status


def _finish(job: Job, stage: str, owner: str, result: dict, ctx: StageContext, started: float) -> str:
    spec = STAGES[stage]
    now = timezone.now()
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(pk=job.pk).first()
        if current is None:  # the document (and its jobs) was deleted while the stage ran
            return "missing"
        if current.status in TERMINAL:  # cancelled while the stage ran: its result is not used
            return _release_ended(current, owner)
        if current.lease_owner != owner:
            # Another worker took over after our lease expired; our work was idempotent, theirs counts.
            return "lease_lost"
        payload = result.pop("_payload", {})
        target = result.pop("_status", spec.done)
        then = result.pop("_then", None)  # a stage may send the job to another stage (finalize: back to embed)
        for field, value in result.items():
            setattr(current, field, value)
        current.provider_calls += ctx.provider_calls
        services.job_set_status(job=current, status=target)
        next_stage = then or (spec.next if target == spec.done else None)
        if next_stage and next_stage in QUEUED_STATUS:
            services.job_set_status(job=current, status=QUEUED_STATUS[next_stage])
        current.attempts = 0
        current.lease_owner, current.lease_expires_at = "", None
        current.last_error_code, current.last_error_message, current.last_error_retryable = "", "", None
        current.stage_times.setdefault(stage, {})["finished"] = now.isoformat()
        current.stage_times[stage]["seconds"] = round(time.monotonic() - started, 3)
        current.progress = {"stage": stage, "stage_pct": 100, "total_pct": _total_progress(stage, 100)}
        if then:  # sent back to an earlier stage: progress is that stage's, not past this one
            current.progress = {"stage": then, "stage_pct": 0, "total_pct": _total_progress(then, 0)}
        if current.status == Status.COMPLETE:
            current.progress["total_pct"] = 100
        current.save()
        services.event_record(job=current, type="stage_finished", stage=stage,
                              message=f"{stage} finished in {time.monotonic() - started:.2f}s",
                              payload={**payload, "status": current.status, "provider_calls": ctx.provider_calls})
        if next_stage:
            services.job_enqueue(job_id=current.id, stage=next_stage)
        return current.status


def _fail(job: Job, stage: str, owner: str, error: PipelineError, ctx: StageContext) -> str:
    spec = STAGES[stage]
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(pk=job.pk).first()
        if current is None:  # the document (and its jobs) was deleted while the stage ran
            return "missing"
        if current.status in TERMINAL:  # cancelled while the stage ran: the failure no longer matters
            return _release_ended(current, owner)
        if current.lease_owner != owner:
            return "lease_lost"
        current.provider_calls += ctx.provider_calls
        current.lease_owner, current.lease_expires_at = "", None
        current.last_error_code, current.last_error_message = error.code, error.message
        current.last_error_retryable = error.retryable
        if error.retryable and current.attempts < settings.JOB_MAX_ATTEMPTS:
            delay = backoff_seconds(current.attempts, error.retry_after)
            current.next_attempt_at = timezone.now() + timedelta(seconds=delay)
            current.save()
            services.event_record(job=current, type="retry_scheduled", stage=stage, code=error.code,
                                  severity=Event.Severity.WARNING, message=error.message,
                                  payload={"attempt": current.attempts, "delay_seconds": round(delay, 2)})
            services.job_enqueue(job_id=current.id, stage=stage)
            return "retry_scheduled"
        services.job_set_status(job=current, status=spec.failed)
        message = error.message
        if error.retryable:
            message = f"{error.message} Gave up after {current.attempts} attempts."
        current.last_error_message = message
        current.save()
        services.event_record(job=current, type="stage_failed", stage=stage, code=error.code,
                              severity=Event.Severity.ERROR, message=message, payload={"attempts": current.attempts})
        return current.status


def _park_pending_parse(job: Job, owner: str) -> str:
    """The parser is still working: release the job and let the sweeper (or the webhook) resume it."""
    with transaction.atomic():
        current = Job.objects.select_for_update().filter(pk=job.pk).first()
        if current is None:  # the document (and its jobs) was deleted while the stage ran
            return "missing"
        if current.status in TERMINAL:  # cancelled while it waited on the parser: nothing more to wait for
            return _release_ended(current, owner)
        if current.lease_owner != owner:
            return "lease_lost"
        current.lease_owner, current.lease_expires_at = "", None
        current.attempts = max(0, current.attempts - 1)  # waiting is not a failed attempt
        current.next_attempt_at = timezone.now() + timedelta(seconds=settings.PARSE_POLL_INTERVAL_SECONDS)
        current.save()
        services.event_record(job=current, type="parse_waiting", stage="parse",
                              message="The parser is still working; polling again later.")
    return "parse_pending"


def run_stage(job_id, stage: str, *, owner: str | None = None) -> str:
    """Run ``stage`` for a job if it is due and free; returns what happened (for logs and tests).

    Safe to call any number of times, concurrently: at most one caller runs the stage.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage}")
    owner = owner or f"{worker_id()}:{uuid.uuid4().hex[:6]}"
    job, outcome = _claim(job_id, stage, owner)
    if job is None:
        logger.info("job %s stage %s: %s, message dropped", job_id, stage, outcome)
        return outcome
    ctx = StageContext(job, stage, owner)
    keeper = LeaseKeeper(ctx)
    keeper.start()
    started = time.monotonic()
    try:
        result = STAGE_FUNCTIONS[stage](job, ctx)
    except parse.ParsePending:
        return _park_pending_parse(job, owner)
    except PipelineError as error:
        logger.warning("job %s stage %s failed: %s %s", job_id, stage, error.code, error.message)
        return _fail(job, stage, owner, error, ctx)
    except Exception as exc:  # a bug or an unforeseen failure: retried like a transient error, then failed
        logger.exception("job %s stage %s crashed", job_id, stage)
        return _fail(job, stage, owner, TransientError(
            "PIPELINE_INTERNAL_ERROR", f"An unexpected error stopped the {stage} stage ({exc.__class__.__name__}). "
            "It will be retried; if it persists, report the job id to engineering."), ctx)
    finally:
        keeper.stopped.set()
    return _finish(job, stage, owner, result, ctx, started)


def run_job_sync(job_id) -> str:
    """Run every due stage of a job in this process, waiting out retry delays (for ``ingest --sync``)."""
    while True:
        job = Job.objects.get(pk=job_id)
        if job.status in TERMINAL:
            return job.status
        stage = next(name for name in STAGE_ORDER if job.status in STAGES[name].entry)
        if job.next_attempt_at and job.next_attempt_at > timezone.now():
            time.sleep(max(0.0, (job.next_attempt_at - timezone.now()).total_seconds()))
        outcome = run_stage(job_id, stage)
        if outcome in ("leased", "busy"):
            time.sleep(0.5)
        close_old_connections()


