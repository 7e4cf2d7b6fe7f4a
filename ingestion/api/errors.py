"""One error shape for the whole API: {"error": {"code", "message", "field"?}}.

Every failure a client can see — validation, 401, 404, 405, 415, 429, pipeline refusals and
unexpected server errors — goes through ``api_exception_handler``, so clients parse one shape and
branch on the stable ``code``.
"""
from __future__ import annotations

import logging
import math

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ingestion.errors import PipelineError

logger = logging.getLogger(__name__)

DRF_CODES = {
    exceptions.NotAuthenticated: "AUTH_REQUIRED",
    exceptions.AuthenticationFailed: "AUTH_FAILED",
    exceptions.PermissionDenied: "PERMISSION_DENIED",
    exceptions.NotFound: "NOT_FOUND",
    Http404: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    exceptions.Throttled: "THROTTLED",
    exceptions.ParseError: "MALFORMED_REQUEST",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
}

NOT_FOUND_MESSAGE = "Nothing was found at this address for your account. Check the id in the URL."
AUTH_HINT = " Send 'Authorization: Token <key>' (POST /api/v1/auth/token/ gives one) or log in."

# HTTP status of each pipeline/service refusal a client can cause; anything else is 400.
STATUS_FOR_CODE = {
    "UPLOAD_TOO_LARGE": status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    "PARSE_NOT_A_PDF": status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    "PARSE_CORRUPT_PDF": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "PARSE_ENCRYPTED_PDF": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "PARSE_NO_PAGES": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "UPLOAD_TOO_MANY_PAGES": status.HTTP_422_UNPROCESSABLE_ENTITY,
    "JOB_NOT_FAILED": status.HTTP_409_CONFLICT,
    "JOB_ALREADY_ENDED": status.HTTP_409_CONFLICT,
    "JOB_NOT_PARSED": status.HTTP_409_CONFLICT,
    "JOB_ACTIVE": status.HTTP_409_CONFLICT,
    "JOB_SUPERSEDED": status.HTTP_409_CONFLICT,
}
# The request field a refusal is about, so a form can show the message next to it.
FIELD_FOR_CODE = {
    "UPLOAD_TOO_LARGE": "file", "PARSE_NOT_A_PDF": "file", "PARSE_EMPTY_FILE": "file", "PARSE_CORRUPT_PDF": "file",
    "PARSE_ENCRYPTED_PDF": "file", "PARSE_NO_PAGES": "file", "UPLOAD_TOO_MANY_PAGES": "file",
    "JOB_UNKNOWN_STAGE": "from_stage", "SEARCH_EMPTY_QUERY": "query", "SEARCH_UNKNOWN_MODE": "mode",
}


class ApiError(exceptions.APIException):
    """A refusal of the API layer itself, with its own stable code."""

    def __init__(self, code: str, message: str, http_status: int = 400, field: str | None = None):
        super().__init__(detail=message, code=code)
        self.status_code = http_status
        self.error_code = code
        self.field = field


class RateLimited(exceptions.Throttled):
    """429 with a code per limit and a sentence saying when to try again; DRF adds Retry-After."""

    def __init__(self, *, code: str, message: str, wait: float):
        wait = max(1, math.ceil(wait))
        super().__init__(wait=wait, detail=f"{message} Try again in {human_duration(wait)}.")
        self.error_code = code


def human_duration(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} seconds"
    if seconds < 2 * 3600:
        return f"{math.ceil(seconds / 60)} minutes"
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h {math.ceil(rest / 60)} min"


def error_body(code: str, message: str, field: str | None = None) -> dict:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return {"error": body}


def error_response(code: str, message: str, http_status: int, field: str | None = None,
                   headers: dict | None = None) -> Response:
    return Response(error_body(code, message, field), status=http_status, headers=headers)


def _first_error(detail, path: list[str]) -> tuple[list[str], str]:
    """The first message in DRF's nested validation detail, with the path of the field it is about."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if value:
                return _first_error(value, path + [str(key)])
    if isinstance(detail, list):
        for value in detail:
            if value:
                return _first_error(value, path)
    return path, str(detail)


def _request_shape_refusal(exc):
    """Django's own refusals of a request's size or shape (raised while DRF reads the body): the
    client's doing, answered with a code and what to change, never a 500 that invites a retry."""
    if isinstance(exc, RequestDataTooBig):
        return error_response("REQUEST_TOO_LARGE", "The request body is larger than the server accepts. Send a "
                              "smaller request (an upload is one PDF of at most "
                              f"{settings.UPLOAD_MAX_BYTES // (1024 * 1024)} MB).",
                              status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, TooManyFilesSent):
        return error_response("TOO_MANY_FILES", "The request carries too many files. Upload one PDF per request, "
                              "in the field 'file'.", status.HTTP_400_BAD_REQUEST, "file")
    if isinstance(exc, TooManyFieldsSent):
        return error_response("TOO_MANY_FIELDS", "The request carries too many form fields. Send only the "
                              "fields the endpoint documents.", status.HTTP_400_BAD_REQUEST)
    return None


# A provider refusing our account (no credit, a revoked key) while serving a member's request (the
# query's vector for a search): not the member's doing, and not something they can fix.
PROVIDER_ACCOUNT_CODES = {"EMBED_QUOTA_EXCEEDED", "EMBED_PROVIDER_AUTH"}


def api_exception_handler(exc, context):
    if isinstance(exc, PipelineError) and exc.code in PROVIDER_ACCOUNT_CODES:
        logger.error("provider refused our account during a request: %s %s", exc.code, exc.message)
        return error_response(exc.code, "Searching by meaning is unavailable right now: the embedding provider "
                              "refused our account, and our operators have been told. Try again later, or "
                              "search with mode 'text'.", status.HTTP_503_SERVICE_UNAVAILABLE,
                              headers={"Retry-After": "300"})
    if isinstance(exc, PipelineError):
        http_status = STATUS_FOR_CODE.get(exc.code, status.HTTP_400_BAD_REQUEST)
        headers = None
        if exc.retryable:  # a provider we depend on is down or limiting us: the client may retry
            http_status = status.HTTP_503_SERVICE_UNAVAILABLE
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after or 5)))}
        return error_response(exc.code, exc.message, http_status, FIELD_FOR_CODE.get(exc.code), headers)
    if isinstance(exc, ApiError):
        return error_response(exc.error_code, str(exc.detail), exc.status_code, exc.field)
    refused = _request_shape_refusal(exc)
    if refused is not None:
        return refused
    response = exception_handler(exc, context)
    if response is None:
        if settings.DEBUG:
            return None  # Django's debug page is more useful to a developer than a JSON 500
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        return error_response("SERVER_ERROR", "Something went wrong on our side; it has been logged. "
                              "Try again in a minute.", status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, exceptions.ValidationError):
        path, message = _first_error(exc.detail, [])
        field = ".".join(p for p in path if p != "non_field_errors") or None
        response.data = error_body("VALIDATION_ERROR", f"{field}: {message}" if field else message, field)
        return response
    code = getattr(exc, "error_code", None) or next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)),
                                                    "REQUEST_ERROR")
    if isinstance(exc, (Http404, exceptions.NotFound)):
        message = NOT_FOUND_MESSAGE
    else:
        message = str(getattr(exc, "detail", exc))
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        message += AUTH_HINT
    response.data = error_body(code, message)
    return response
