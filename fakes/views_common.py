"""Pieces shared by the fake services: bearer auth, JSON bodies, and the faults every endpoint can meet."""
from __future__ import annotations

import json
import math
from functools import wraps
from typing import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from fakes import faults as fault_knobs
from fakes.models import FakeRequest

# Rows of the request log kept; older ones are pruned every PRUNE_EVERY requests.
REQUEST_LOG_KEEP = 10_000
PRUNE_EVERY = 500

ErrorBody = Callable[..., HttpResponse]  # (status, message, code, type) -> vendor-shaped error response


def bearer_token(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def read_json(request: HttpRequest):
    try:
        return json.loads(request.body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def _log(request: HttpRequest, service: str, outcome: str, *, status: int | None, delay_ms: float = 0.0,
         sequence: int | None = None) -> FakeRequest:
    entry = FakeRequest.objects.create(service=service, method=request.method, path=request.path[:500],
                                       outcome=outcome, status=status, delay_ms=round(delay_ms, 3),
                                       sequence=sequence)
    if entry.pk % PRUNE_EVERY == 0:
        FakeRequest.objects.filter(pk__lte=entry.pk - REQUEST_LOG_KEEP).delete()
    return entry


def rate_limited(faults: fault_knobs.Faults, error_body: ErrorBody) -> HttpResponse:
    response = error_body(429, "Rate limit reached for requests. Please try again later.",
                          "rate_limit_exceeded", "requests")
    # Retry-After is whole seconds (rounded up: "0" would invite an immediate retry); -ms is exact.
    response["Retry-After"] = str(math.ceil(faults.retry_after_seconds))
    response["retry-after-ms"] = str(int(faults.retry_after_seconds * 1000))
    reset = f"{faults.retry_after_seconds:g}s"
    response["x-ratelimit-limit-requests"] = "3000"
    response["x-ratelimit-remaining-requests"] = "0"
    response["x-ratelimit-reset-requests"] = reset
    response["x-ratelimit-limit-tokens"] = "1000000"
    response["x-ratelimit-remaining-tokens"] = "0"
    response["x-ratelimit-reset-tokens"] = reset
    return response


def fake_endpoint(service: str, *, error_body: ErrorBody, denied: Callable[[HttpRequest], HttpResponse | None],
                  malform: Callable[[HttpResponse], HttpResponse]):
    """Wrap a fake's view: bearer auth, then the faults in force, then the view, each request logged.

    The view is called as ``view(request, faults, draw, **kwargs)``. All random choices of a request
    come from its ``draw``, in a fixed order, so a seeded run repeats exactly.
    """

    def decorate(view):
        @csrf_exempt
        @wraps(view)
        def endpoint(request: HttpRequest, **kwargs) -> HttpResponse:
            refusal = denied(request)
            if refusal is not None:
                _log(request, service, "unauthorized", status=refusal.status_code)
                return refusal
            faults = fault_knobs.current(service)
            draw = fault_knobs.draw_for(service, faults)
            delay_ms = faults.latency_ms + draw.uniform(faults.jitter_ms)
            if draw.roll(faults.timeout_rate):
                outcome = "timeout"
            elif draw.roll(faults.rate_limit_rate):
                outcome = "rate_limited"
            elif draw.roll(faults.error_rate):
                outcome = "server_error"
            else:
                outcome = "ok"
            error_status = draw.choice([500, 502, 503])
            # Logged before any waiting, so a client that gave up still leaves a record of what it met.
            entry = _log(request, service, outcome, status=None, delay_ms=delay_ms, sequence=draw.sequence)
            fault_knobs.sleep_ms(delay_ms)
            if faults.quota_exhausted and service == "openai":
                # an account state, not a draw: every request meets it, before anything else is looked at
                outcome = "quota_exhausted"
                response = error_body(429, "You exceeded your current quota, please check your plan and billing "
                                      "details. For more information on this error, read the docs: "
                                      "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                                      "insufficient_quota", "insufficient_quota")
            elif outcome == "timeout":
                fault_knobs.sleep_ms(faults.hang_seconds * 1000)
                response = error_body(504, "The server timed out processing the request.", "timeout", "server_error")
            elif outcome == "rate_limited":
                response = rate_limited(faults, error_body)
            elif outcome == "server_error":
                response = error_body(error_status, "The server had an error while processing your request.",
                                      None, "server_error")
            else:
                response = view(request, faults, draw, **kwargs)
                if response.status_code == 200 and draw.roll(faults.malformed_rate):
                    response, outcome = malform(response), "malformed"
            FakeRequest.objects.filter(pk=entry.pk).update(status=response.status_code, outcome=outcome)
            return response

        return endpoint

    return decorate
