"""Reads of documents, jobs and chunks, always scoped to their owner where a member asks."""
from __future__ import annotations

from django.db.models import Count, QuerySet

from ingestion.models import Chunk, Document, Event, Job
from ingestion.statuses import TERMINAL


def documents_for_owner(*, owner) -> QuerySet[Document]:
    return Document.objects.filter(owner=owner).select_related("current_job")


def document_for_owner(*, owner, document_id) -> Document | None:
    return documents_for_owner(owner=owner).filter(pk=document_id).first()


def job_for_owner(*, owner, job_id) -> Job | None:
    return Job.objects.filter(pk=job_id, document__owner=owner).select_related("document").first()


def events_for_document(*, document: Document) -> QuerySet[Event]:
    return Event.objects.filter(document=document).order_by("created_at", "id")


def chunks_for_document(*, document: Document) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document=document).order_by("ordinal")


def document_chunk_count(*, document: Document) -> int:
    return Chunk.objects.filter(document=document).count()


def active_jobs_for_owner(*, owner) -> QuerySet[Job]:
    """The member's jobs that have not ended (queued, running or waiting for a retry)."""
    return Job.objects.filter(document__owner=owner).exclude(status__in=TERMINAL)


def active_job_count_for_owner(*, owner) -> int:
    return active_jobs_for_owner(owner=owner).count()


def document_chunk_counts(*, document_ids) -> dict:
    """document id -> number of stored chunks, in one query."""
    rows = (Chunk.objects.filter(document_id__in=list(document_ids)).values("document_id")
            .annotate(total=Count("id")).values_list("document_id", "total"))
    return dict(rows)
