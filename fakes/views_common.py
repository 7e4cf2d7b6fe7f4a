"""Pieces shared by the fake services: bearer auth, JSON answers, injected HTTP faults."""
from __future__ import annotations

import json
import time

from django.http import HttpRequest, JsonResponse

from fakes import faults as fault_knobs


def bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def injected_failure(faults: fault_knobs.Faults, error_body) -> JsonResponse | None:
    """Apply latency, then maybe answer a hang, a 429 or a 5xx instead of the real answer."""
    fault_knobs.delay(faults)
    if fault_knobs.roll(faults.timeout_rate):
        time.sleep(faults.hang_seconds)
        return error_body(504, "The server timed out processing the request.", "timeout", "server_error")
    if fault_knobs.roll(faults.rate_limit_rate):
        response = error_body(429, "Rate limit reached for requests. Please try again later.",
                              "rate_limit_exceeded", "requests")
        response["Retry-After"] = str(max(0, int(round(faults.retry_after_seconds))))
        response["retry-after-ms"] = str(int(faults.retry_after_seconds * 1000))
        response["x-ratelimit-limit-requests"] = "3000"
        response["x-ratelimit-remaining-requests"] = "0"
        response["x-ratelimit-reset-requests"] = f"{faults.retry_after_seconds}s"
        response["x-ratelimit-limit-tokens"] = "1000000"
        response["x-ratelimit-remaining-tokens"] = "0"
        response["x-ratelimit-reset-tokens"] = f"{faults.retry_after_seconds}s"
        return response
    if fault_knobs.roll(faults.error_rate):
        status = fault_knobs.choice([500, 502, 503])
        return error_body(status, "The server had an error while processing your request.", None, "server_error")
    return None


def read_json(request: HttpRequest):
    try:
        return json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
