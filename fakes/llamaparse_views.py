"""A stand-in for LlamaParse's v1 parsing API (upload, job status, results, signed webhooks).

Jobs live in the database, so any web process answers for any job. A job becomes ready after
``parse_seconds``: a background thread parses it then and sends the webhook; a status poll that
finds it due parses it itself, so a job never depends on the thread that started it.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from fakes import faults as fault_knobs
from fakes.models import FakeParseJob
from fakes.views_common import bearer_token, injected_failure
from ingestion.errors import PermanentError
from ingestion.providers.pdf_text import pdf_to_markdown_pages

logger = logging.getLogger(__name__)

# Our parser's error codes, as LlamaParse reports them on an ERROR job.
VENDOR_ERROR_CODES = {
    "PARSE_NO_TEXT": ("NO_DATA_FOUND_IN_FILE", "No data found in file."),
    "PARSE_NOT_A_PDF": ("UNSUPPORTED_FILE_TYPE", "The file type is not supported or the file is corrupted."),
    "PARSE_CORRUPT_PDF": ("CORRUPTED_FILE", "The file is corrupted and could not be read."),
    "PARSE_EMPTY_FILE": ("NO_DATA_FOUND_IN_FILE", "The file is empty."),
    "PARSE_ENCRYPTED_PDF": ("PDF_IS_PROTECTED", "The PDF is protected by a password."),
}


def llama_error(status: int, detail: str, *_ignored) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _denied(request: HttpRequest) -> JsonResponse | None:
    if bearer_token(request) != settings.FAKES_LLAMAPARSE_API_KEY:
        return llama_error(401, "Invalid authentication token")
    return None


def _files_dir() -> Path:
    path = Path(settings.NAVIGATOR_DATA_DIR) / "fakes" / "llamaparse"
    path.mkdir(parents=True, exist_ok=True)
    return path


def sign_webhook(body: bytes, timestamp: str, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _deliver_webhook(job: FakeParseJob, faults: fault_knobs.Faults) -> None:
    if not job.webhook_url or fault_knobs.roll(faults.webhook_drop_rate):
        return
    body = json.dumps({"event": f"parse.{job.status.lower()}", "job_id": str(job.id), "status": job.status,
                       "error_code": job.error_code or None, "error_message": job.error_message or None}).encode()
    times = 2 if fault_knobs.roll(faults.webhook_duplicate_rate) else 1
    secret = job.webhook_secret or settings.FAKES_LLAMAPARSE_WEBHOOK_SECRET
    for _ in range(times):
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Webhook-Timestamp": timestamp,
                   "X-Webhook-Signature": sign_webhook(body, timestamp, secret),
                   "X-Webhook-Id": str(uuid.uuid4())}
        try:
            httpx.post(job.webhook_url, content=body, headers=headers, timeout=10)
        except httpx.HTTPError as exc:
            logger.warning("fake llamaparse: webhook to %s failed: %s", job.webhook_url, exc)
        FakeParseJob.objects.filter(pk=job.pk).update(webhook_deliveries=F("webhook_deliveries") + 1)


def complete_job(job_id) -> FakeParseJob | None:
    """Parse a due PENDING job and record SUCCESS or ERROR. Returns the job if this call finished it."""
    faults = fault_knobs.current("llamaparse")
    with transaction.atomic():
        job = FakeParseJob.objects.select_for_update(skip_locked=True).filter(pk=job_id, status="PENDING").first()
        if job is None or job.ready_at > timezone.now():
            return None
        if fault_knobs.roll(faults.parse_error_rate):
            job.status, job.error_code, job.error_message = "ERROR", "INTERNAL_SERVER_ERROR", "Parsing failed unexpectedly."
        else:
            try:
                data = Path(job.file_path).read_bytes()
                markdown = pdf_to_markdown_pages(data)
                job.pages = [{"page": i, "md": md, "text": md.replace("#", "").strip()}
                             for i, md in enumerate(markdown, start=1)]
                job.status = "SUCCESS"
            except PermanentError as exc:
                job.status = "ERROR"
                job.error_code, job.error_message = VENDOR_ERROR_CODES.get(exc.code, ("PARSING_FAILED", exc.message))
        job.save(update_fields=["status", "error_code", "error_message", "pages"])
    return job


def _finish_later(job_id, delay_seconds: float) -> None:
    def run() -> None:
        try:
            time.sleep(max(0.0, delay_seconds))
            job = complete_job(job_id)
            if job is not None:
                _deliver_webhook(job, fault_knobs.current("llamaparse"))
        except Exception:  # the thread must never take the web process down
            logger.exception("fake llamaparse: background parse of %s failed", job_id)
        finally:
            connection.close()  # this thread's own connection

    threading.Thread(target=run, name=f"fake-parse-{job_id}", daemon=True).start()


@csrf_exempt
@require_POST
def upload(request: HttpRequest) -> JsonResponse:
    denied = _denied(request)
    if denied:
        return denied
    faults = fault_knobs.current("llamaparse")
    failure = injected_failure(faults, llama_error)
    if failure:
        return failure
    uploaded = request.FILES.get("file")
    if uploaded is None and not request.POST.get("input_url"):
        return llama_error(400, "Either file or input_url must be provided.")
    if uploaded is None:
        return llama_error(400, "input_url is not reachable from this offline parser; upload the file instead.")
    data = uploaded.read()
    job = FakeParseJob(file_name=uploaded.name or "upload.pdf", file_sha256=hashlib.sha256(data).hexdigest(),
                       options={k: v for k, v in request.POST.items() if k not in ("webhook_url", "webhook_secret")},
                       webhook_url=request.POST.get("webhook_url", ""),
                       webhook_secret=request.POST.get("webhook_secret", ""),
                       ready_at=timezone.now() + timedelta(seconds=faults.parse_seconds))
    path = _files_dir() / f"{job.id}.bin"
    path.write_bytes(data)
    job.file_path = str(path)
    job.save()
    transaction.on_commit(lambda: _finish_later(job.id, faults.parse_seconds))
    return JsonResponse({"id": str(job.id), "status": "PENDING"})


def _job_or_404(job_id) -> FakeParseJob | None:
    try:
        return FakeParseJob.objects.filter(pk=uuid.UUID(str(job_id))).first()
    except ValueError:
        return None


@csrf_exempt
@require_GET
def job_status(request: HttpRequest, job_id) -> JsonResponse:
    denied = _denied(request)
    if denied:
        return denied
    failure = injected_failure(fault_knobs.current("llamaparse"), llama_error)
    if failure:
        return failure
    job = _job_or_404(job_id)
    if job is None:
        return llama_error(404, "Job not found")
    if job.status == "PENDING" and job.ready_at <= timezone.now():
        finished = complete_job(job.id)
        if finished is not None:
            _deliver_webhook(finished, fault_knobs.current("llamaparse"))
        job.refresh_from_db()
    body = {"id": str(job.id), "status": job.status}
    if job.status == "ERROR":
        body.update({"error_code": job.error_code, "error_message": job.error_message})
    return JsonResponse(body)


@csrf_exempt
@require_GET
def job_result(request: HttpRequest, job_id, result_type: str) -> JsonResponse:
    denied = _denied(request)
    if denied:
        return denied
    failure = injected_failure(fault_knobs.current("llamaparse"), llama_error)
    if failure:
        return failure
    job = _job_or_404(job_id)
    if job is None or job.status != "SUCCESS":
        return llama_error(404, "Job not found or not completed yet")
    metadata = {"job_pages": len(job.pages), "job_auto_mode_triggered_pages": 0, "job_is_cache_hit": False}
    separator = job.options.get("page_separator") or "\n---\n"
    if result_type == "markdown":
        return JsonResponse({"markdown": separator.join(p["md"] for p in job.pages), "job_metadata": metadata})
    if result_type == "text":
        return JsonResponse({"text": separator.join(p["text"] for p in job.pages), "job_metadata": metadata})
    pages = [{"page": p["page"], "text": p["text"], "md": p["md"], "images": [], "items": [],
              "status": "OK", "links": [], "width": 612, "height": 792} for p in job.pages]
    return JsonResponse({"pages": pages, "job_metadata": metadata, "file_name": job.file_name})
