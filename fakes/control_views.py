"""Run-time control of the fakes' faults: GET shows them, POST/PUT changes, DELETE resets to the environment."""
from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from fakes import faults as fault_knobs
from fakes.models import FaultSettings
from fakes.views_common import bearer_token, read_json

SERVICES = ("llamaparse", "openai")


@csrf_exempt
def faults_view(request: HttpRequest, service: str) -> JsonResponse:
    if not hmac.compare_digest(bearer_token(request), settings.FAKES_CONTROL_TOKEN):
        return JsonResponse({"error": {"code": "FAKES_CONTROL_UNAUTHORIZED",
                                       "message": "Send 'Authorization: Bearer <FAKES_CONTROL_TOKEN>'."}}, status=401)
    if service not in SERVICES:
        return JsonResponse({"error": {"code": "FAKES_UNKNOWN_SERVICE",
                                       "message": f"Service must be one of {', '.join(SERVICES)}."}}, status=404)
    if request.method in ("POST", "PUT", "PATCH"):
        body = read_json(request)
        if not isinstance(body, dict):
            return JsonResponse({"error": {"code": "FAKES_BAD_BODY",
                                           "message": "Send a JSON object of knob: number."}}, status=400)
        row, _ = FaultSettings.objects.get_or_create(service=service)
        merged = dict(row.config) if request.method == "PATCH" else {}
        merged.update(body)
        try:
            fault_knobs.Faults().merged(merged)
        except (ValueError, TypeError) as exc:
            return JsonResponse({"error": {"code": "FAKES_BAD_KNOB", "message": str(exc)}}, status=400)
        row.config = merged
        row.save(update_fields=["config", "updated_at"])
    elif request.method == "DELETE":
        FaultSettings.objects.filter(service=service).delete()
    elif request.method != "GET":
        return JsonResponse({"error": {"code": "METHOD_NOT_ALLOWED", "message": "Use GET, POST, PATCH or DELETE."}},
                            status=405)
    return JsonResponse({"service": service, "faults": fault_knobs.current(service).as_dict(),
                         "knobs": fault_knobs.KNOBS_HELP})
