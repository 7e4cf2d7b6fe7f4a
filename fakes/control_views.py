"""Run-time control of the fakes.

``/fakes/control/faults/<service>/``: GET shows the faults in force, POST/PUT replaces the override,
PATCH merges into it, DELETE goes back to the environment's. Every change restarts the seeded
sequence, so the same knobs set again replay the same run.
``/fakes/control/requests/<service>/``: the latest requests the fake received and what it did.
Both want ``Authorization: Bearer <FAKES_CONTROL_TOKEN>``; ``/fakes/health/`` is open.
"""
from __future__ import annotations

import hmac

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from fakes import faults as fault_knobs
from fakes.models import FakeRequest, FaultSettings
from fakes.views_common import bearer_token, read_json

SERVICES = ("llamaparse", "openai")
REQUESTS_LIMIT_MAX = 1000


def _refused(request: HttpRequest, service: str) -> JsonResponse | None:
    if not hmac.compare_digest(bearer_token(request).encode(), settings.FAKES_CONTROL_TOKEN.encode()):
        return JsonResponse({"error": {"code": "FAKES_CONTROL_UNAUTHORIZED",
                                       "message": "Send 'Authorization: Bearer <FAKES_CONTROL_TOKEN>'."}}, status=401)
    if service not in SERVICES:
        return JsonResponse({"error": {"code": "FAKES_UNKNOWN_SERVICE",
                                       "message": f"Service must be one of {', '.join(SERVICES)}."}}, status=404)
    return None


@csrf_exempt
def faults_view(request: HttpRequest, service: str) -> JsonResponse:
    refused = _refused(request, service)
    if refused:
        return refused
    if request.method in ("POST", "PUT", "PATCH"):
        body = read_json(request)
        if not isinstance(body, dict):
            return JsonResponse({"error": {"code": "FAKES_BAD_BODY",
                                           "message": "Send a JSON object of knob: value, e.g. {\"error_rate\": 0.2}."}},
                                status=400)
        row, _ = FaultSettings.objects.get_or_create(service=service)
        merged = dict(row.config) if request.method == "PATCH" else {}
        merged.update(body)
        try:
            fault_knobs.Faults.from_env().merged(merged)
        except ValueError as exc:
            return JsonResponse({"error": {"code": "FAKES_BAD_KNOB", "message": str(exc)}}, status=400)
        row.config, row.draws = merged, 0
        row.save(update_fields=["config", "draws", "updated_at"])
    elif request.method == "DELETE":
        FaultSettings.objects.filter(service=service).delete()
    elif request.method != "GET":
        return JsonResponse({"error": {"code": "METHOD_NOT_ALLOWED", "message": "Use GET, POST, PUT, PATCH or DELETE."}},
                            status=405)
    return JsonResponse({"service": service, "faults": fault_knobs.current(service).as_dict(),
                         "knobs": fault_knobs.KNOBS_HELP})


@csrf_exempt
@require_GET
def requests_view(request: HttpRequest, service: str) -> JsonResponse:
    refused = _refused(request, service)
    if refused:
        return refused
    try:
        limit = max(1, min(int(request.GET.get("limit", 100)), REQUESTS_LIMIT_MAX))
    except ValueError:
        return JsonResponse({"error": {"code": "FAKES_BAD_LIMIT",
                                       "message": f"limit must be a whole number from 1 to {REQUESTS_LIMIT_MAX}."}},
                            status=400)
    rows = FakeRequest.objects.filter(service=service).order_by("-id")[:limit]
    return JsonResponse({"service": service, "requests": [
        {"id": r.id, "at": r.created_at.isoformat(), "method": r.method, "path": r.path, "outcome": r.outcome,
         "status": r.status, "delay_ms": r.delay_ms, "sequence": r.sequence} for r in reversed(rows)]})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Open: answers 200 when the fakes can reach their database (for container health checks)."""
    try:
        FaultSettings.objects.exists()
    except DatabaseError as exc:
        return JsonResponse({"status": "error", "database": exc.__class__.__name__}, status=503)
    return JsonResponse({"status": "ok", "services": list(SERVICES)})
