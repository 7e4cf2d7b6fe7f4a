"""A qcluster reports itself alive as soon as its workers start, not only at its first scheduled heartbeat.

django-q2 runs schedules every 30 s at the earliest, so without this a freshly started cluster
looked dead to /health/ (and to the deployment gate) for its first half minute or more.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def heartbeat_on_worker_start(sender, proc_name: str = "", **kwargs) -> None:
    from ingestion.tasks import heartbeat

    try:
        heartbeat()
    except Exception:  # the worker must start even when the database hiccups; the schedule retries
        logger.exception("heartbeat at worker start failed (%s)", proc_name)
