"""System checks for production (``manage.py check --deploy``): local conveniences left on, and
settings that quietly weaken what the server does."""
from __future__ import annotations

from django.conf import settings
from django.core import checks

FAKES_PATH = "/fakes/"


def points_at_fakes(url: str) -> bool:
    """Whether a provider URL names the built-in fakes (served by this app or by ``runfakes``)."""
    return FAKES_PATH in url + "/"


@checks.register(checks.Tags.security, deploy=True)
def production_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.DEBUG:
        return []
    problems = []
    if settings.FAKES_ENABLED:
        problems.append(checks.Warning(
            "FAKES_ENABLED is on with DEBUG off: the fake LlamaParse and OpenAI are served at /fakes/ and accept "
            "the keys published in this repository; their upload fetches any input_url it is given.",
            hint="Unset FAKES_ENABLED (it follows DEBUG).", id="ingestion.W001"))
    fake_urls = [name for name, url, used in (
        ("LLAMAPARSE_BASE_URL", settings.LLAMAPARSE_BASE_URL, settings.PARSER_BACKEND == "llamaparse"),
        ("OPENAI_BASE_URL", settings.OPENAI_BASE_URL, settings.EMBEDDING_BACKEND == "openai")) if used and points_at_fakes(url)]
    if fake_urls:
        problems.append(checks.Warning(
            f"{' and '.join(fake_urls)} point at the fake providers with DEBUG off: documents would be parsed and "
            "embedded by the fakes.",
            hint="Set LLAMAPARSE_BASE_URL=https://api.cloud.llamaindex.ai and OPENAI_BASE_URL="
                 "https://api.openai.com/v1 with their keys (or PARSER_BACKEND / EMBEDDING_BACKEND=local).",
            id="ingestion.W002"))
    if settings.API_TRUSTED_PROXY_COUNT == 0:
        problems.append(checks.Warning(
            "API_TRUSTED_PROXY_COUNT is 0 with DEBUG off: behind a reverse proxy every client has the proxy's "
            "address, so the per-address token-request limit is one bucket for everyone (a few bad logins lock "
            "all members out) and the audit log records the proxy.",
            hint="Set API_TRUSTED_PROXY_COUNT to the number of proxies that append X-Forwarded-For (1 behind one "
                 "load balancer); leave it 0 only if clients reach gunicorn directly.",
            id="ingestion.W003"))
    return problems
