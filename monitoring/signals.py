"""A qcluster reports itself alive as soon as its workers start and whenever one starts a task, not
only at its scheduled heartbeat.

django-q2 runs schedules every 30 s at the earliest, so without this a freshly started cluster
looked dead to /health/ (and to the deployment gate) for its first half minute or more. And the
scheduled heartbeat is a task in the same queue as the pipeline's: behind a burst of uploads, or
while both workers poll the parser (up to PARSE_POLL_WINDOW_SECONDS), it waited, and a busy cluster
looked dead. A worker starting any task is proof enough that the cluster executes tasks.
"""
from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)

# At most one heartbeat write per worker process in this many seconds, however many tasks it starts.
TASK_HEARTBEAT_EVERY_SECONDS = 15.0
_last_task_heartbeat = 0.0


def heartbeat_on_worker_start(sender, proc_name: str = "", **kwargs) -> None:
    from ingestion.tasks import heartbeat

    try:
        heartbeat()
    except Exception:  # the worker must start even when the database hiccups; the schedule retries
        logger.exception("heartbeat at worker start failed (%s)", proc_name)


def heartbeat_on_task_start(sender, **kwargs) -> None:
    """django-q2's ``pre_execute`` (in the worker): a heartbeat, at most every 15 s per process."""
    global _last_task_heartbeat
    if time.monotonic() - _last_task_heartbeat < TASK_HEARTBEAT_EVERY_SECONDS:
        return
    _last_task_heartbeat = time.monotonic()
    heartbeat_on_worker_start(sender, proc_name="task")
