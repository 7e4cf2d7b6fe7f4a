"""System checks (``manage.py check``; ``--deploy`` adds the production ones): provider settings
that cannot work, and local conveniences left on in production."""
from __future__ import annotations

from django.conf import settings
from django.core import checks

FAKES_PATH = "/fakes/"


def _pointed_at_fakes(url: str) -> bool:
    return FAKES_PATH in url + "/"


@checks.register()
def providers_reachable_by_configuration(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A provider URL that names the built-in fakes while they are not served can never answer."""
    if settings.FAKES_ENABLED:
        return []
    problems = []
    if settings.PARSER_BACKEND == "llamaparse" and _pointed_at_fakes(settings.LLAMAPARSE_BASE_URL):
        problems.append(checks.Error(
            f"LLAMAPARSE_BASE_URL ({settings.LLAMAPARSE_BASE_URL}) points at the built-in fake parser, which is "
            "not served (FAKES_ENABLED is off).",
            hint="Set LLAMAPARSE_BASE_URL=https://api.cloud.llamaindex.ai and LLAMAPARSE_API_KEY, or "
                 "PARSER_BACKEND=local; for a local stack set FAKES_ENABLED=true.",
            id="ingestion.E001"))
    if settings.EMBEDDING_BACKEND == "openai" and _pointed_at_fakes(settings.OPENAI_BASE_URL):
        problems.append(checks.Error(
            f"OPENAI_BASE_URL ({settings.OPENAI_BASE_URL}) points at the built-in fake embeddings, which are not "
            "served (FAKES_ENABLED is off).",
            hint="Set OPENAI_BASE_URL=https://api.openai.com/v1 and OPENAI_API_KEY, or EMBEDDING_BACKEND=local; "
                 "for a local stack set FAKES_ENABLED=true.",
            id="ingestion.E002"))
    return problems


@checks.register(checks.Tags.security, deploy=True)
def fakes_off_in_production(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """The fakes take the repository's published keys and fetch any URL they are given."""
    if settings.FAKES_ENABLED and not settings.DEBUG:
        return [checks.Warning(
            "FAKES_ENABLED is on with DEBUG off: the fake LlamaParse and OpenAI are served at /fakes/ and accept "
            "the keys published in this repository; their upload fetches any input_url it is given.",
            hint="Unset FAKES_ENABLED (it follows DEBUG) and point LLAMAPARSE_BASE_URL and OPENAI_BASE_URL at "
                 "the real services.",
            id="ingestion.W001")]
    return []
