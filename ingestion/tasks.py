"""django-q2 entry points: thin, take ids, call the runner or a service."""
from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from ingestion.models import Job, WorkerHeartbeat
from ingestion.pipeline import runner
from ingestion.statuses import STAGE_ORDER, STAGES, TERMINAL

# A retry due within this many seconds is waited for in the worker; later ones are left to the sweeper.
MAX_INLINE_WAIT_SECONDS = 30
# Claims tried while the job row is locked by a short transaction, before the message is re-sent.
BUSY_RETRIES = 8


def run_stage(job_id: str, stage: str) -> str:
    job = Job.objects.filter(pk=job_id).only("next_attempt_at", "status").first()
    if job is not None and job.next_attempt_at and job.status not in TERMINAL:
        wait = (job.next_attempt_at - timezone.now()).total_seconds()
        if 0 < wait <= MAX_INLINE_WAIT_SECONDS:
            time.sleep(wait)
    # "busy": another transaction holds the job row for a moment (a webhook being recorded, a lease
    # renewal). That is never a reason to drop the wake-up: try again shortly, then re-send it.
    for attempt in range(BUSY_RETRIES):
        outcome = runner.run_stage(job_id, stage)
        if outcome != "busy":
            return outcome
        time.sleep(0.05 * (attempt + 1))
    from ingestion import services

    services.job_enqueue(job_id=job_id, stage=stage)
    return "busy_requeued"


def sweep() -> dict:
    """Re-enqueue jobs whose lease expired, whose retry time came, or whose wake-up message was lost.

    Safe to run any time and concurrently: the runner's claim decides who works on a job.
    """
    from ingestion import services

    now = timezone.now()
    quiet_since = now - timedelta(seconds=settings.SWEEP_LOST_MESSAGE_SECONDS)
    due = (Job.objects.exclude(status__in=TERMINAL)
           .filter(Q(lease_expires_at__lt=now)  # a worker died mid-stage
                   | Q(lease_owner="", next_attempt_at__lte=now)  # a retry (or a parse poll) is due
                   | Q(lease_owner="", next_attempt_at__isnull=True, updated_at__lt=quiet_since))  # message lost
           .values_list("id", "status"))
    # A lease held by a process of this host that was killed is not waited out.
    held = (Job.objects.exclude(status__in=TERMINAL).exclude(lease_owner="").filter(lease_expires_at__gte=now)
            .values_list("id", "status", "lease_owner"))
    due = list(due) + [(job_id, status) for job_id, status, owner in held if runner.lease_holder_is_dead(owner)]
    counts = {name: 0 for name in STAGE_ORDER}
    for job_id, status in due:
        stage = next(name for name in STAGE_ORDER if status in STAGES[name].entry)
        services.job_enqueue(job_id=job_id, stage=stage)
        counts[stage] += 1
    return counts


def heartbeat() -> None:
    """Record that a qcluster on this host is alive (health checks read it)."""
    WorkerHeartbeat.objects.update_or_create(worker=f"{socket.gethostname()}:{os.getppid()}",
                                             defaults={"seen_at": timezone.now()})


