"""Stage 1, parse: the raw PDF to per-page markdown, through LlamaParse or the local PDFium backend.

Idempotent: a job that already has a parser job id polls it instead of uploading again.
"""
from __future__ import annotations

import ipaddress
import logging
import select
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from ingestion import storage
from ingestion.checks import points_at_fakes
from ingestion.errors import PermanentError, TransientError
from ingestion.models import Document, Event, Job
from ingestion.providers import pdf_text
from ingestion.providers.llamaparse import LlamaParseClient, error_for_failed_job

logger = logging.getLogger(__name__)


class ParsePending(Exception):
    """The parser has not finished within the poll window; the sweeper polls again later."""


def _channel(job_id) -> str:
    return f"parse_done_{str(job_id).replace('-', '')}"


def notify_parse_done(job_id) -> None:
    """Wake the worker polling the parser for this job (sent when the transaction commits)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [_channel(job_id)])


class _WebhookWaiter:
    """LISTENs for the webhook of one job, so a poll loop sleeps until the webhook or its next poll."""

    def __init__(self, job_id):
        self.channel = _channel(job_id)

    def __enter__(self) -> "_WebhookWaiter":
        with connection.cursor() as cursor:
            cursor.execute(f'LISTEN "{self.channel}"')
        return self

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True if the webhook arrived meanwhile."""
        raw = connection.connection
        if raw is None or connection.in_atomic_block:  # no listening connection: a plain sleep
            time.sleep(seconds)
            return False
        raw.poll()
        if not raw.notifies and select.select([raw], [], [], seconds)[0]:
            raw.poll()
        woken = bool(raw.notifies)
        raw.notifies.clear()
        return woken

    def __exit__(self, *exc) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'UNLISTEN "{self.channel}"')
        except Exception:  # the connection broke: its listens went with it
            pass


def callback_url_usable(url: str) -> bool:
    """Whether LlamaParse can be given ``url`` as its ``webhook_url``.

    LlamaParse calls back only HTTPS URLs on a domain name (not an IP address), under 200 characters.
    A loopback URL is the local stack's own fake parser calling its neighbour, and is kept.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if host in ("localhost", "127.0.0.1", "::1"):
        return True
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return parts.scheme == "https" and "." in host and len(url) < 200


def webhook_url_for(job: Job) -> str:
    """The job's callback address (its token is the credential), or "" when the parser cannot use one."""
    if not settings.WEBHOOK_BASE_URL or not job.webhook_secret:
        return ""
    url = settings.WEBHOOK_BASE_URL + reverse("llamaparse-webhook",
                                              kwargs={"job_id": job.id, "token": job.webhook_secret})
    if not callback_url_usable(url) and not points_at_fakes(settings.LLAMAPARSE_BASE_URL):  # the fake calls any
        logger.warning("WEBHOOK_BASE_URL %s cannot be called back by the parser (it needs HTTPS on a domain name, "
                       "under 200 characters in all); parse jobs finish by polling", settings.WEBHOOK_BASE_URL)
        return ""
    return url


def _submitted_at(job: Job):
    """When the parser job being waited for was submitted (its parse_submitted event)."""
    event = (Event.objects.filter(job=job, type="parse_submitted", payload__parse_job_id=job.parse_job_id)
             .order_by("-created_at").first())
    return event.created_at if event else job.created_at


def _resubmit_next_attempt(job: Job, error: TransientError) -> TransientError:
    """The parser job will never succeed: forget it, so the next attempt submits the file afresh, with a
    new callback address (the abandoned parser job's late callback then finds no job)."""
    Job.objects.filter(pk=job.pk).update(parse_job_id="", webhook_secret=Job.new_webhook_secret())
    return error


def _pages_via_llamaparse(job: Job, data: bytes, ctx) -> list[str]:
    with LlamaParseClient() as client:
        try:
            if not job.parse_job_id:
                if not job.webhook_secret:
                    job.webhook_secret = Job.new_webhook_secret()
                    Job.objects.filter(pk=job.pk).update(webhook_secret=job.webhook_secret)
                job.parse_job_id = client.upload(data=data, filename=job.document.filename,
                                                 webhook_url=webhook_url_for(job))
                # Saved at once: a retry after a crash polls this parser job instead of paying twice.
                Job.objects.filter(pk=job.pk).update(parse_job_id=job.parse_job_id)
                ctx.event("parse_submitted", message="The document was sent to the parser.",
                          payload={"parse_job_id": job.parse_job_id})
            give_up_at = _submitted_at(job) + timedelta(seconds=settings.PARSE_MAX_WAIT_SECONDS)
            deadline = time.monotonic() + settings.PARSE_POLL_WINDOW_SECONDS
            interval = settings.PARSE_POLL_FIRST_INTERVAL_SECONDS
            with _WebhookWaiter(job.id) as webhook:
                while True:
                    status = client.status(job.parse_job_id)
                    if status.status == "SUCCESS":
                        return client.pages(job.parse_job_id)
                    if status.status == "ERROR":
                        error = error_for_failed_job(status)
                        raise _resubmit_next_attempt(job, error) if isinstance(error, TransientError) else error
                    if status.status in ("CANCELED", "CANCELLED"):
                        raise _resubmit_next_attempt(job, TransientError(
                            "PARSE_JOB_CANCELLED", "The parser cancelled this job; we will submit the document again."))
                    if status.status == "PARTIAL_SUCCESS":
                        # the same bytes would be read the same way (and LlamaParse caches them): not retried
                        raise PermanentError("PARSE_JOB_INCOMPLETE", "The parser could read only part of the "
                                             "document (a damaged or unreadable page). Export it to PDF again, or "
                                             "scan the missing pages, and upload the new copy.")
                    # PENDING (or a status this client does not know): still working, within limits
                    if timezone.now() >= give_up_at:
                        minutes = settings.PARSE_MAX_WAIT_SECONDS / 60
                        raise _resubmit_next_attempt(job, TransientError(
                            "PARSE_TIMEOUT", f"The parser has not finished this document in {minutes:g} minutes "
                            f"(its job {job.parse_job_id} is still {status.status}); we will submit it again."))
                    if time.monotonic() >= deadline:
                        raise ParsePending(job.parse_job_id)
                    ctx.renew_lease()
                    # Poll again after the interval, or at once when the parser's webhook arrives.
                    if webhook.wait(interval):
                        ctx.event("parse_webhook_wake", message="The parser's webhook arrived; fetching the result.")
                    interval = min(interval * 1.5, settings.PARSE_POLL_MAX_INTERVAL_SECONDS)
        finally:
            ctx.provider_calls += client.calls


def run(job: Job, ctx) -> dict:
    document = job.document
    data = storage.raw_file_read(document.storage_path)
    pdf_text.check_pdf_bytes(data)
    if settings.PARSER_BACKEND == "local":
        pages = pdf_text.pdf_to_markdown_pages(data)
    else:
        pages = _pages_via_llamaparse(job, data, ctx)
    new_path = storage.parsed_pages_save(document_id=document.id, pages=pages)
    with transaction.atomic():
        # the path stored now, read under the row lock (a reprocess may have replaced it meanwhile)
        old_path = (Document.objects.select_for_update().filter(pk=document.id).values_list("parsed_path", flat=True)
                    .first())
        if old_path is None:  # the member deleted the document while it was being parsed
            storage.file_delete(new_path)
            raise PermanentError("DOCUMENT_DELETED", "The document was deleted while it was being parsed; "
                                 "nothing of it is kept.")
        Document.objects.filter(pk=document.id).update(parsed_path=new_path, page_count=len(pages),
                                                       updated_at=timezone.now())
    document.parsed_path, document.page_count = new_path, len(pages)
    if old_path and old_path != new_path:
        storage.file_delete(old_path)
    return {"page_count": len(pages)}
