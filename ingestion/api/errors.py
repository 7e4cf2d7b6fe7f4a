"""One error shape for the whole API: {"error": {"code", "message", "field"?}}."""
from __future__ import annotations

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from ingestion.errors import PipelineError

DRF_CODES = {
    exceptions.NotAuthenticated: "AUTH_REQUIRED",
    exceptions.AuthenticationFailed: "AUTH_FAILED",
    exceptions.PermissionDenied: "PERMISSION_DENIED",
    exceptions.NotFound: "NOT_FOUND",
    Http404: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.Throttled: "THROTTLED",
    exceptions.ParseError: "MALFORMED_REQUEST",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
}


def error_response(code: str, message: str, http_status: int, field: str | None = None) -> Response:
    body = {"code": code, "message": message}
    if field:
        body["field"] = field
    return Response({"error": body}, status=http_status)


def api_exception_handler(exc, context):
    if isinstance(exc, PipelineError):
        return error_response(exc.code, exc.message, status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError) and isinstance(exc.detail, dict):
        field, messages = next(iter(exc.detail.items()))
        message = messages[0] if isinstance(messages, list) and messages else str(messages)
        response.data = {"error": {"code": "VALIDATION_ERROR", "message": f"{field}: {message}", "field": field}}
        return response
    code = next((c for cls, c in DRF_CODES.items() if isinstance(exc, cls)), "REQUEST_ERROR")
    detail = getattr(exc, "detail", str(exc))
    if isinstance(exc, Http404):
        detail = "Not found."
    response.data = {"error": {"code": code, "message": str(detail)}}
    return response
