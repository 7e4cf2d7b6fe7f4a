"""Every write to documents and jobs goes through a function here (the stage runner included)."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from ingestion import storage
from ingestion.errors import PermanentError
from ingestion.models import Document, Event, Job
from ingestion.providers import pdf_text
from ingestion.statuses import FAILED, STAGE_ORDER, TERMINAL, Status, check_transition, path_to

User = get_user_model()


class UploadRejected(PermanentError):
    """An upload refused before any row or file is written."""


@dataclass
class UploadResult:
    document: Document
    job: Job | None
    duplicate: bool


def _safe_filename(name: str) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip().replace("\x00", "")
    base = "".join(ch for ch in base if ch.isprintable()) or "document.pdf"
    if len(base) > 200:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 200 - len(ext) - 1] + "." + ext) if dot and len(ext) <= 10 else base[:200]
    return base


def upload_check(*, data: bytes) -> int:
    """Refuse what can never be processed (not a PDF, too large, encrypted, corrupt, too many pages).

    Returns the page count. Raises UploadRejected with a code and an actionable message.
    """
    if len(data) > settings.UPLOAD_MAX_BYTES:
        raise UploadRejected("UPLOAD_TOO_LARGE", f"The file is {len(data) / 2**20:.1f} MB; the limit is "
                             f"{settings.UPLOAD_MAX_BYTES / 2**20:.0f} MB. Split the document or compress it.")
    try:
        pages = pdf_text.page_count(data)
    except PermanentError as exc:
        raise UploadRejected(exc.code, exc.message) from exc
    if pages == 0:
        raise UploadRejected("PARSE_NO_PAGES", "The PDF has no pages. Export the document again and upload it.")
    if pages > settings.UPLOAD_MAX_PAGES:
        raise UploadRejected("UPLOAD_TOO_MANY_PAGES", f"The PDF has {pages} pages; the limit is "
                             f"{settings.UPLOAD_MAX_PAGES}. Upload the relevant part as a separate PDF.")
    return pages


def document_upload(*, owner: User, data: bytes, filename: str) -> UploadResult:
    """Store an uploaded PDF and start its processing; the same bytes from the same member are one document."""
    page_count = upload_check(data=data)
    sha = hashlib.sha256(data).hexdigest()
    existing = Document.objects.filter(owner=owner, file_sha256=sha).first()
    if existing:
        return UploadResult(existing, existing.current_job, True)
    path = storage.raw_file_save(owner_id=owner.pk, data=data)
    try:
        with transaction.atomic():
            document = Document.objects.create(owner=owner, filename=_safe_filename(filename), size=len(data),
                                               file_sha256=sha, storage_path=path, page_count=page_count)
            job = job_start(document=document)
    except IntegrityError:
        # The same bytes were uploaded concurrently; the other upload won.
        storage.file_delete(path)
        existing = Document.objects.get(owner=owner, file_sha256=sha)
        return UploadResult(existing, existing.current_job, True)
    except BaseException:
        storage.file_delete(path)  # no row points at it: a refused upload leaves nothing behind
        raise
    return UploadResult(document, job, False)


def event_record(*, job: Job, type: str, stage: str = "", code: str = "", message: str = "",
                 severity: str = Event.Severity.INFO, payload: dict | None = None) -> Event:
    return Event.objects.create(job=job, document_id=job.document_id, type=type, stage=stage, code=code,
                                message=message, severity=severity, payload=payload or {})


def job_enqueue(*, job_id, stage: str) -> None:
    """Wake a worker for ``stage`` of a job once the current transaction commits."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task("ingestion.tasks.run_stage", str(job_id), stage,
                                             task_name=f"{stage}:{job_id}", group=stage))


def job_set_status(*, job: Job, status: str) -> list[str]:
    """Move a job (and its document, when current) to ``status`` through the allowed path."""
    steps = path_to(job.status, status)
    for step in steps:
        check_transition(job.status, step)
        job.status = step
    if status in TERMINAL:
        job.finished_at = timezone.now()
    Document.objects.filter(pk=job.document_id, current_job=job).update(status=job.status, updated_at=timezone.now())
    return steps


@transaction.atomic
def job_start(*, document: Document, from_stage: str = "parse") -> Job:
    """Create a new job for ``document`` starting at ``from_stage`` and enqueue it. Keeps older jobs' history.

    This is reprocessing too; refused (JOB_ACTIVE) while another job of the document has not ended.
    """
    if from_stage not in ("parse", "chunk", "embed"):
        raise PermanentError("JOB_UNKNOWN_STAGE", f"Unknown stage '{from_stage}': use parse, chunk or embed.")
    if from_stage != "parse" and not document.parsed_path:
        raise PermanentError("JOB_NOT_PARSED", "The document was never parsed; reprocess it from the parse stage.")
    document_refuse_if_busy(document=document)
    start_status = {"parse": Status.UPLOADED, "chunk": Status.PARSE_VALIDATED, "embed": Status.CHUNKS_STORED}[from_stage]
    job = Job.objects.create(document=document, status=start_status, start_stage=from_stage,
                             webhook_secret=Job.new_webhook_secret(), page_count=document.page_count,
                             embed_model=settings.EMBEDDING_MODEL, embed_dimensions=settings.EMBEDDING_DIMENSIONS)
    document.current_job = job
    document.status = start_status
    document.save(update_fields=["current_job", "status", "updated_at"])
    event_record(job=job, type="job_created", stage=from_stage, message=f"Processing starts at the {from_stage} stage.")
    job_enqueue(job_id=job.id, stage=from_stage)
    return job


@transaction.atomic
def job_cancel(*, job: Job) -> Job:
    """Cancel a job that has not ended; a running stage finishes its step and then stops."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if job.status in TERMINAL:
        raise PermanentError("JOB_ALREADY_ENDED", f"The job already ended ({job.status}); nothing to cancel.")
    job_set_status(job=job, status=Status.CANCELLED)
    # A stage running now keeps its lease until it ends (the runner releases it): until then a retry or
    # reprocess of the document waits, so two runs never work on one document at once.
    job.next_attempt_at = None
    job.save()
    event_record(job=job, type="job_cancelled", message="The job was cancelled.")
    return job


@transaction.atomic
def job_retry(*, job: Job) -> Job:
    """Start a new job for a failed or cancelled job's document, from the stage that failed.

    Refused (JOB_NOT_FAILED, JOB_ACTIVE) unless the job failed or was cancelled and no other job of
    its document is still running.
    """
    job = Job.objects.select_related("document").get(pk=job.pk)
    if job.status not in FAILED | {Status.CANCELLED}:
        raise PermanentError("JOB_NOT_FAILED", f"Only failed or cancelled jobs can be retried; this one is {job.status}.")
    if job.document.current_job_id != job.pk:
        raise PermanentError("JOB_SUPERSEDED", f"The document has a newer job ({job.document.current_job_id}) than "
                             "this one; retry or reprocess that one instead.")
    failed_stage = next((name for name in STAGE_ORDER if job.stage_times.get(name, {}).get("started")
                         and not job.stage_times.get(name, {}).get("finished")), "parse")
    from_stage = {"parse": "parse", "validate": "parse", "chunk": "chunk", "embed": "embed", "finalize": "embed"}[failed_stage]
    if from_stage != "parse" and not job.document.parsed_path:
        from_stage = "parse"
    return job_start(document=job.document, from_stage=from_stage)


def document_refuse_if_busy(*, document: Document) -> None:
    """Lock the document row and raise JOB_ACTIVE if one of its jobs has not ended.

    The lock makes two concurrent retries/reprocesses of one document start one job, not two.
    Call inside a transaction.
    """
    from ingestion.pipeline.runner import lease_holder_is_dead

    Document.objects.select_for_update().filter(pk=document.pk).first()
    active = Job.objects.filter(document_id=document.pk).exclude(status__in=TERMINAL).first()
    if active is not None:
        raise PermanentError("JOB_ACTIVE", f"The document is still being processed (job {active.id} is "
                             f"{active.status}). Wait for it to end, or cancel it first.")
    finishing = (Job.objects.filter(document_id=document.pk, lease_expires_at__gt=timezone.now())
                 .exclude(lease_owner="").first())
    if finishing is not None and not lease_holder_is_dead(finishing.lease_owner):
        raise PermanentError("JOB_ACTIVE", f"The document's job {finishing.id} is {finishing.status}, but a worker "
                             "is still finishing the step it was on. Try again in a few seconds.")


def document_delete(*, document: Document) -> None:
    """Delete a document with its jobs, chunks, events and stored files.

    The row is locked and its file paths read afresh: a parse stage running meanwhile may have stored
    a new parsed file since ``document`` was loaded (and one that finishes after this cannot record its
    file: it removes it itself). Files are removed once the deletion commits, never for a deletion
    that is rolled back.
    """
    with transaction.atomic():
        row = Document.objects.select_for_update().filter(pk=document.pk).values("storage_path", "parsed_path").first()
        if row is None:
            return
        document.delete()
        paths = [row["storage_path"], row["parsed_path"]]
        transaction.on_commit(lambda: [storage.file_delete(path) for path in paths])


def document_delete_audited(*, document: Document, actor, client, via: str = "api") -> None:
    """Delete a document for a person (a member through the API, staff in the admin): the audit record
    naming them is written in the same transaction as the deletion."""
    from ingestion import audit
    from ingestion.models import AuditRecord

    with transaction.atomic():
        audit.audit_record(actor=actor, action=AuditRecord.Action.DOCUMENT_DELETED, document_id=document.id,
                           document_owner_id=document.owner_id, client=client,
                           detail={"via": via, "filename_length": len(document.filename), "size": document.size,
                                   "jobs": document.jobs.count()})
        document_delete(document=document)


def user_get_or_create(*, username: str) -> User:
    user, _ = User.objects.get_or_create(username=username)
    return user

