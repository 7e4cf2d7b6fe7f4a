"""The one client of LlamaParse's v1 parsing API. Vendor failures become TransientError/PermanentError here."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import httpx
from django.conf import settings

from ingestion.errors import PermanentError, TransientError
from ingestion.providers.pool import ClientPool

# Error codes of an ERROR job that no retry can fix; any other ERROR is retried as transient.
PERMANENT_JOB_ERRORS = {
    "NO_DATA_FOUND_IN_FILE": ("PARSE_NO_TEXT", "No text could be read from the PDF (it may be a scan without a "
                              "text layer). Upload a PDF with selectable text, or run it through OCR first."),
    "UNSUPPORTED_FILE_TYPE": ("PARSE_NOT_A_PDF", "The parser could not read the file as a PDF. Export the "
                              "document to PDF again and upload that file."),
    "CORRUPTED_FILE": ("PARSE_CORRUPT_PDF", "The PDF is damaged or incomplete. Download or export it again "
                       "and upload the new copy."),
    "PDF_IS_PROTECTED": ("PARSE_ENCRYPTED_PDF", "The PDF is password-protected. Remove the password and upload "
                         "it again."),
}


# Seconds the client itself waits before retrying; longer Retry-After delays go back to the runner.
MAX_INLINE_RETRY_WAIT = 5.0


@dataclass
class ParseStatus:
    status: str  # PENDING | SUCCESS | ERROR | CANCELED (PARTIAL_SUCCESS from some parse modes)
    error_code: str = ""
    error_message: str = ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_pool = ClientPool()


class LlamaParseClient:
    def __init__(self, *, base_url: str | None = None, api_key: str | None = None, timeout: float | None = None):
        self.base_url = (base_url or settings.LLAMAPARSE_BASE_URL).rstrip("/")
        key = (self.base_url, api_key or settings.LLAMAPARSE_API_KEY, timeout or settings.LLAMAPARSE_TIMEOUT_SECONDS)
        # one connection pool per process and parser endpoint, kept between documents (ingestion.providers.pool)
        self._http = _pool.get(key, lambda: httpx.Client(
            base_url=key[0], timeout=key[2], headers={"Authorization": f"Bearer {key[1]}", "Accept": "application/json"}))
        self.calls = 0
        self.retries = 0

    def close(self) -> None:
        """Nothing to release: the connection pool is the process's, kept for the next document."""

    def __enter__(self) -> "LlamaParseClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, url: str, **kwargs) -> dict:
        """One API call, retried here a few times when that is safe, as the official SDKs do.

        Reads (GET) are retried on any transient failure; an upload only when the parser refused it
        before doing anything (429, or no connection). A wait longer than ``MAX_INLINE_RETRY_WAIT``
        is left to the stage runner's backoff instead of holding the worker.
        """
        for attempt in range(settings.LLAMAPARSE_MAX_RETRIES + 1):
            try:
                return self._request_once(method, url, **kwargs)
            except TransientError as error:
                safe = method == "GET" or error.code in ("PARSE_RATE_LIMITED", "PARSE_PROVIDER_UNREACHABLE")
                wait = error.retry_after if error.retry_after is not None else 0.25 * 2 ** attempt * random.uniform(1, 2)
                if not safe or attempt == settings.LLAMAPARSE_MAX_RETRIES or wait > MAX_INLINE_RETRY_WAIT:
                    raise
                self.retries += 1
                time.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _request_once(self, method: str, url: str, **kwargs) -> dict:
        self.calls += 1
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.ConnectError as exc:
            raise TransientError("PARSE_PROVIDER_UNREACHABLE",
                                 f"The parser could not be reached ({exc}); we will retry.") from exc
        except httpx.TimeoutException as exc:
            raise TransientError("PARSE_PROVIDER_TIMEOUT", "The parser did not answer in time; we will retry.") from exc
        except httpx.TransportError as exc:
            raise TransientError("PARSE_PROVIDER_UNAVAILABLE",
                                 f"The parser could not be reached ({exc.__class__.__name__}); we will retry.") from exc
        if response.status_code == 429:
            raise TransientError("PARSE_RATE_LIMITED", "The parser is rate-limiting us; we will retry after its delay.",
                                 retry_after=_retry_after(response))
        if response.status_code >= 500:
            raise TransientError("PARSE_PROVIDER_ERROR",
                                 f"The parser failed with HTTP {response.status_code}; we will retry.",
                                 retry_after=_retry_after(response))
        if response.status_code in (401, 403):
            raise PermanentError("PARSE_PROVIDER_AUTH",
                                 "The parser refused our API key. Check LLAMAPARSE_API_KEY, then retry the document.")
        if response.status_code >= 400:
            raise PermanentError("PARSE_PROVIDER_REJECTED",
                                 f"The parser rejected the request (HTTP {response.status_code}: "
                                 f"{response.text[:200]}).")
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError("PARSE_PROVIDER_MALFORMED", "The parser answered with a malformed body; we will retry.") from exc

    def upload(self, *, data: bytes, filename: str, webhook_url: str = "") -> str:
        """Submit a file; returns the parser's job id. With ``webhook_url`` the parser POSTs the result there
        when the job succeeds (unsigned: see ingestion.webhooks)."""
        fields = {"language": "en", "page_separator": "\n---\n"}
        if webhook_url:
            fields["webhook_url"] = webhook_url
        body = self._request("POST", "/api/v1/parsing/upload", files={"file": (filename, data, "application/pdf")},
                             data=fields)
        job_id = body.get("id")
        if not job_id:
            raise TransientError("PARSE_PROVIDER_MALFORMED", "The parser accepted the file but returned no job id.")
        return str(job_id)

    def status(self, job_id: str) -> ParseStatus:
        body = self._request("GET", f"/api/v1/parsing/job/{job_id}")
        return ParseStatus(body.get("status", "PENDING"), body.get("error_code") or "", body.get("error_message") or "")

    def pages(self, job_id: str) -> list[str]:
        """Markdown of each page of a finished job, in page order."""
        body = self._request("GET", f"/api/v1/parsing/job/{job_id}/result/json")
        pages = body.get("pages")
        if not isinstance(pages, list):
            raise TransientError("PARSE_PROVIDER_MALFORMED", "The parser's result had no pages; we will retry.")
        ordered = sorted(pages, key=lambda p: p.get("page", 0))
        return [str(p.get("md") or p.get("text") or "") for p in ordered]


def error_for_failed_job(status: ParseStatus) -> Exception:
    """An ERROR job as one of our errors: permanent for bad input, transient otherwise."""
    if status.error_code in PERMANENT_JOB_ERRORS:
        code, message = PERMANENT_JOB_ERRORS[status.error_code]
        return PermanentError(code, message)
    return TransientError("PARSE_JOB_FAILED",
                          f"The parser failed this job ({status.error_code or 'no code'}: "
                          f"{status.error_message or 'no message'}); we will submit it again.")
