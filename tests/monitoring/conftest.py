"""Rows with known times for the monitoring tests (auto timestamps are set after creation)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from model_bakery import baker

from ingestion.models import Document, Event, Job


@pytest.fixture(autouse=True)
def empty_shared_cache(django_db_blocker):
    """The cache is a database table outside any model, so test transactions and flushes leave it alone:
    empty it, or one test's alert-evaluation time and cluster status would leak into the next."""
    from django.core.cache import cache

    with django_db_blocker.unblock():
        cache.clear()
    yield


@pytest.fixture
def now():
    return timezone.now()


@pytest.fixture
def make_job(db, member, now):
    """A document with one job; ``created_ago``/``finished_ago``/``updated_ago`` are seconds before ``now``."""

    def make(status: str = "complete", *, created_ago: float = 60, finished_ago: float | None = None,
             updated_ago: float | None = None, filename: str = "policy.pdf", owner=None, **fields) -> Job:
        document = baker.make(Document, owner=owner or member, filename=filename, status=status, size=1000)
        job = baker.make(Job, document=document, status=status, **fields)
        Document.objects.filter(pk=document.pk).update(current_job=job)
        Job.objects.filter(pk=job.pk).update(
            created_at=now - timedelta(seconds=created_ago),
            updated_at=now - timedelta(seconds=updated_ago if updated_ago is not None else created_ago),
            finished_at=now - timedelta(seconds=finished_ago) if finished_ago is not None else None)
        job.refresh_from_db()
        return job

    return make


@pytest.fixture
def make_event(db, now):
    def make(job: Job, type: str, *, stage: str = "", ago: float = 0, code: str = "", payload=None) -> Event:
        event = baker.make(Event, job=job, document_id=job.document_id, type=type, stage=stage, code=code,
                           payload=payload or {})
        Event.objects.filter(pk=event.pk).update(created_at=now - timedelta(seconds=ago))
        return event

    return make
