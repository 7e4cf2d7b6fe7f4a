"""Reachability probes of the providers, shared by /health/ and the dashboard.

A probe is one cheap authenticated GET with a short timeout: an answer that is not a server error
proves the endpoint is up and the key accepted; it never uploads or embeds anything.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import httpx
from django.conf import settings

PROVIDERS = ("llamaparse", "openai")


@dataclass
class ProbeResult:
    provider: str
    ok: bool
    detail: str
    seconds: float
    used: bool = True


def _target(provider: str) -> tuple[str, str]:
    if provider == "llamaparse":
        # An unknown job id answers 404 from a healthy service that accepted the key.
        return f"{settings.LLAMAPARSE_BASE_URL}/api/parsing/job/{uuid.UUID(int=0)}", settings.LLAMAPARSE_API_KEY
    if provider == "openai":
        return f"{settings.OPENAI_BASE_URL}/models", settings.OPENAI_API_KEY
    raise ValueError(f"unknown provider {provider}")


def provider_probe(provider: str) -> ProbeResult:
    """Call ``provider`` once; ok unless it is unreachable, too slow, refuses the key or answers 5xx."""
    if provider == "llamaparse" and settings.PARSER_BACKEND == "local":
        return ProbeResult(provider, True, "not used (PARSER_BACKEND=local)", 0.0, used=False)
    if provider == "openai" and settings.EMBEDDING_BACKEND == "local":
        return ProbeResult(provider, True, "not used (EMBEDDING_BACKEND=local)", 0.0, used=False)
    url, key = _target(provider)
    started = time.monotonic()
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {key}"},
                             timeout=settings.PROVIDER_CHECK_TIMEOUT_SECONDS)
    except httpx.TimeoutException:
        return ProbeResult(provider, False, f"no answer within {settings.PROVIDER_CHECK_TIMEOUT_SECONDS:g}s",
                           time.monotonic() - started)
    except httpx.TransportError as exc:
        return ProbeResult(provider, False, f"unreachable ({exc.__class__.__name__})", time.monotonic() - started)
    seconds = time.monotonic() - started
    if response.status_code in (401, 403):
        return ProbeResult(provider, False, f"the API key was refused (HTTP {response.status_code})", seconds)
    if response.status_code >= 500 or response.status_code == 429:
        return ProbeResult(provider, False, f"answered HTTP {response.status_code}", seconds)
    if not _the_api_answered(provider, response):
        return ProbeResult(provider, False, f"HTTP {response.status_code} from something that is not its API: check "
                           f"{'LLAMAPARSE_BASE_URL' if provider == 'llamaparse' else 'OPENAI_BASE_URL'}", seconds)
    return ProbeResult(provider, True, f"HTTP {response.status_code} in {seconds * 1000:.0f} ms", seconds)


def _the_api_answered(provider: str, response: httpx.Response) -> bool:
    """The provider's API itself answered, not a web server at a wrong address (whose 404 proves nothing).

    OpenAI lists its models (200, ``{"data": [...]}``); LlamaParse answers the unknown job with its own
    JSON error (``{"detail": ...}``)."""
    try:
        body = response.json()
    except ValueError:
        return False
    if provider == "openai":
        return response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("data"), list)
    return isinstance(body, dict) and ("detail" in body or "status" in body)
