"""A stand-in for LlamaParse's v1 parsing API (upload, job status, results, the webhook_url callback).

Jobs live in the database, so any web process answers for any job. A job becomes ready after
``parse_seconds``: a background thread parses it then and sends the webhook; a status poll that
finds it due parses it itself, so a job never depends on the thread that started it. Options the
real service honours for a PDF are honoured here: ``target_pages`` (0-based, "0,2-4"),
``max_pages`` and ``page_separator`` (with its ``{pageNumber}`` placeholder).

The callback is LlamaParse's: when a job succeeds, its result (``txt``, ``md``, ``json`` pages,
``images``) is POSTed to the ``webhook_url`` given at upload, unsigned and without the job's id.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from fakes import faults as fault_knobs
from fakes.models import FakeParseJob, FakeRequest
from fakes.views_common import bearer_token, fake_endpoint
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
# Messages of the vendor codes a parse_error_rate fault can end a job with.
VENDOR_ERROR_MESSAGES = {code: message for code, message in VENDOR_ERROR_CODES.values()} | {
    "INTERNAL_SERVER_ERROR": "Parsing failed unexpectedly.",
    "TIMEOUT": "The job timed out while parsing.",
}
_HEADING_MARK = re.compile(r"^#{1,6}\s+", re.MULTILINE)
_TARGET_PAGES = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$")
# Upload fields that are not parsing options (they change how the job is delivered, not its output).
_NOT_OPTIONS = {"webhook_url", "input_url"}
# Bytes of an input_url download: the project's own upload cap is well below this.
INPUT_URL_MAX_BYTES = 100 * 1024 * 1024


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


def webhook_body(job: FakeParseJob) -> bytes:
    """What LlamaParse POSTs to a succeeded job's webhook_url: the whole result, and nothing else."""
    return json.dumps({
        "txt": _joined(job, "text"), "md": _joined(job, "md"),
        "json": [{"page": p["page"], "text": p["text"], "md": p["md"], "images": []} for p in job.pages],
        "images": [],
    }).encode()


def _deliver_webhook(job: FakeParseJob, faults: fault_knobs.Faults) -> None:
    if not job.webhook_url or job.webhook_copies == 0 or job.status != "SUCCESS":
        return
    body = webhook_body(job)
    for _ in range(job.webhook_copies):
        try:
            httpx.post(job.webhook_url, content=body, headers={"Content-Type": "application/json"}, timeout=10)
        except httpx.HTTPError as exc:
            logger.warning("fake llamaparse: webhook to %s failed: %s", job.webhook_url, exc)
        FakeParseJob.objects.filter(pk=job.pk).update(webhook_deliveries=F("webhook_deliveries") + 1)


def _send_webhooks(job: FakeParseJob, faults: fault_knobs.Faults) -> None:
    """Deliver a succeeded job's webhooks and log it (a dropped one too, so its absence can be watched).
    Like LlamaParse's webhook_url, a job that ends ERROR or CANCELED calls nobody back."""
    _deliver_webhook(job, faults)
    if job.webhook_url and job.status == "SUCCESS":
        FakeRequest.objects.create(service="llamaparse", method="WEBHOOK", path=job.webhook_url[:500],
                                   outcome="webhook_sent" if job.webhook_copies else "webhook_dropped",
                                   status=None, sequence=None)


def target_page_indexes(spec: str) -> list[int]:
    """0-based page indexes of a ``target_pages`` value such as "0,2-4", in the order given."""
    indexes: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        indexes.extend(range(int(first), int(last or first) + 1))
    return list(dict.fromkeys(indexes))


def _selected_pages(markdown: list[str], options: dict) -> list[tuple[int, str]]:
    """(1-based page number, markdown) of the pages the job's options ask for."""
    numbered = list(enumerate(markdown, start=1))
    if options.get("target_pages"):
        wanted = target_page_indexes(options["target_pages"])
        numbered = [numbered[i] for i in wanted if i < len(numbered)]
    if options.get("max_pages"):
        numbered = numbered[: int(options["max_pages"])]
    return numbered


def complete_job(job_id) -> FakeParseJob | None:
    """Parse a due PENDING job and record SUCCESS or ERROR. Returns the job if this call finished it."""
    with transaction.atomic():
        # Waits for a parse already under way elsewhere (then finds the job done): a poll after the
        # job's ready time always sees its outcome, never a PENDING left by a race.
        job = FakeParseJob.objects.select_for_update().filter(pk=job_id, status="PENDING").first()
        if job is None or job.ready_at > timezone.now():
            return None
        if job.planned_cancel:
            job.status = "CANCELED"
        elif job.planned_error_code:
            job.status, job.error_code = "ERROR", job.planned_error_code
            job.error_message = VENDOR_ERROR_MESSAGES.get(job.planned_error_code, "Parsing failed.")
        else:
            try:
                selected = _selected_pages(pdf_to_markdown_pages(Path(job.file_path).read_bytes()), job.options)
                if not selected:
                    raise PermanentError("PARSE_NO_TEXT", "No page of the file is within target_pages/max_pages.")
                job.pages = [{"page": number, "md": md, "text": _HEADING_MARK.sub("", md).strip()}
                             for number, md in selected]
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
                _send_webhooks(job, fault_knobs.current("llamaparse"))
        except Exception:  # the thread must never take the web process down
            logger.exception("fake llamaparse: background parse of %s failed", job_id)
        finally:
            connection.close()  # this thread's own connection

    threading.Thread(target=run, name=f"fake-parse-{job_id}", daemon=True).start()


def _broken_json(response: HttpResponse) -> HttpResponse:
    """A malformed answer: the body cut off halfway, as a dropped connection would leave it."""
    response.content = response.content[: max(1, len(response.content) // 2)]
    return response


llamaparse_endpoint = fake_endpoint("llamaparse", error_body=llama_error, denied=_denied, malform=_broken_json)


def _download(url: str) -> tuple[bytes, str] | JsonResponse:
    try:
        with httpx.stream("GET", url, timeout=30, follow_redirects=True) as response:
            response.raise_for_status()
            data = b""
            for piece in response.iter_bytes():
                data += piece
                if len(data) > INPUT_URL_MAX_BYTES:
                    return llama_error(400, f"The file at input_url is larger than {INPUT_URL_MAX_BYTES} bytes.")
    except httpx.HTTPError as exc:
        return llama_error(400, f"Could not download input_url ({exc.__class__.__name__}: {exc}).")
    name = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "download.pdf"
    return data, name


@require_POST
@llamaparse_endpoint
def upload(request: HttpRequest, faults: fault_knobs.Faults, draw: fault_knobs.Draw) -> JsonResponse:
    uploaded = request.FILES.get("file")
    input_url = request.POST.get("input_url", "").strip()
    if uploaded is None and not input_url:
        return llama_error(400, "Either file or input_url must be provided.")
    target_pages = request.POST.get("target_pages", "")
    if target_pages and not _TARGET_PAGES.match(target_pages):
        return llama_error(400, "target_pages must be 0-based page numbers and ranges separated by commas, e.g. '0,2-4'.")
    max_pages = request.POST.get("max_pages", "")
    if max_pages and not (max_pages.isdigit() and int(max_pages) > 0):
        return llama_error(400, "max_pages must be a positive integer.")
    if uploaded is not None:
        data, file_name = uploaded.read(), uploaded.name or "upload.pdf"
    else:
        downloaded = _download(input_url)
        if isinstance(downloaded, JsonResponse):
            return downloaded
        data, file_name = downloaded
    # The job's fate is drawn now, from the faults in force at upload.
    planned_error_code = faults.parse_error_code if draw.roll(faults.parse_error_rate) else ""
    if draw.roll(faults.webhook_drop_rate):
        webhook_copies = 0
    else:
        webhook_copies = 2 if draw.roll(faults.webhook_duplicate_rate) else 1
    planned_cancel = draw.roll(faults.parse_cancel_rate)
    options = {k: v for k, v in request.POST.items() if k not in _NOT_OPTIONS}
    sha256 = hashlib.sha256(data).hexdigest()
    # Like the real service, the same bytes parsed with the same options come from its cache.
    is_cache_hit = FakeParseJob.objects.filter(file_sha256=sha256, options=options, status="SUCCESS").exists()
    job = FakeParseJob(file_name=file_name, file_sha256=sha256, options=options,
                       webhook_url=request.POST.get("webhook_url", ""), planned_cancel=planned_cancel,
                       ready_at=timezone.now() + timedelta(seconds=faults.parse_seconds),
                       planned_error_code=planned_error_code, webhook_copies=webhook_copies,
                       is_cache_hit=is_cache_hit)
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


@require_GET
@llamaparse_endpoint
def job_status(request: HttpRequest, faults: fault_knobs.Faults, draw: fault_knobs.Draw, job_id) -> JsonResponse:
    job = _job_or_404(job_id)
    if job is None:
        return llama_error(404, "Job not found")
    if job.status == "PENDING" and job.ready_at <= timezone.now():
        finished = complete_job(job.id)
        if finished is not None:
            _send_webhooks(finished, faults)
        job.refresh_from_db()
    body = {"id": str(job.id), "status": job.status}
    if job.status == "ERROR":
        body.update({"error_code": job.error_code, "error_message": job.error_message})
    return JsonResponse(body)


def _joined(job: FakeParseJob, key: str) -> str:
    """Pages joined with the job's separator; ``{pageNumber}`` in it becomes the next page's number."""
    separator = job.options.get("page_separator") or "\n---\n"
    parts = [job.pages[0][key]] if job.pages else []
    for page in job.pages[1:]:
        parts += [separator.replace("{pageNumber}", str(page["page"])), page[key]]
    return "".join(parts)


@require_GET
@llamaparse_endpoint
def job_result(request: HttpRequest, faults: fault_knobs.Faults, draw: fault_knobs.Draw, job_id,
               result_type: str, raw: str = "") -> HttpResponse:
    job = _job_or_404(job_id)
    if job is None or job.status != "SUCCESS":
        return llama_error(404, "Job not found or not completed yet")
    key = {"markdown": "md", "text": "text"}.get(result_type)
    if raw:
        return HttpResponse(_joined(job, key), content_type=f"text/{'markdown' if key == 'md' else 'plain'}; "
                                                            "charset=utf-8")
    metadata = {"job_pages": len(job.pages), "job_auto_mode_triggered_pages": 0, "job_is_cache_hit": job.is_cache_hit}
    if key:
        return JsonResponse({result_type: _joined(job, key), "job_metadata": metadata})
    pages = [{"page": p["page"], "text": p["text"], "md": p["md"], "images": [], "charts": [], "tables": [],
              "layout": [], "items": _page_items(p["md"]), "status": "OK", "links": [], "width": 612.0,
              "height": 792.0, "triggeredAutoMode": False, "parsingMode": "accurate",
              "structuredData": None, "noStructuredContent": False, "noTextContent": not p["text"]}
             for p in job.pages]
    # Only pages and job_metadata: the official SDK passes job_id and file_name itself, and a
    # result carrying them too breaks its JobResult.
    return JsonResponse({"pages": pages, "job_metadata": metadata})


def _page_items(markdown: str) -> list[dict]:
    """The page's blocks as LlamaParse lists them: headings with their level, the rest as text."""
    items: list[dict] = []
    for block in (b.strip() for b in markdown.split("\n\n")):
        if not block:
            continue
        level = len(block) - len(block.lstrip("#"))
        if level and block[level:level + 1] == " ":
            value = block[level + 1:].strip()
            items.append({"type": "heading", "lvl": level, "value": value, "md": block})
        else:
            items.append({"type": "text", "value": block, "md": block})
    return items
