"""Shared fixtures: members, generated PDFs, and the fakes served over real HTTP by a live server."""
from __future__ import annotations

import threading

import pytest
from model_bakery import baker

from samples.generate import build_document


@pytest.fixture(scope="session", autouse=True)
def side_connections_closed(django_db_setup, django_db_blocker):
    """Hybrid search keeps side connections open between searches, and the provider clients keep HTTP
    connections (each holding a live-server thread and its database session); all close before the test
    database is dropped."""
    yield
    from ingestion.providers import pool
    from ingestion.search import side_connections_close

    pool.close_all()
    with django_db_blocker.unblock():
        side_connections_close()


@pytest.fixture
def member(db):
    return baker.make("auth.User", username="member-a")


@pytest.fixture
def other_member(db):
    return baker.make("auth.User", username="member-b")


@pytest.fixture(scope="session")
def pdf_bytes():
    """A generated 3-page policy PDF."""
    return build_document(3, seed=1)


@pytest.fixture
def providers(live_server, settings):
    """Point the LlamaParse and OpenAI clients (and webhooks) at the fakes on a real HTTP server."""
    settings.LLAMAPARSE_BASE_URL = f"{live_server.url}/fakes/llamaparse"
    settings.OPENAI_BASE_URL = f"{live_server.url}/fakes/openai/v1"
    settings.WEBHOOK_BASE_URL = live_server.url
    settings.PARSER_BACKEND = "llamaparse"
    settings.RETRY_BASE_SECONDS = 0.05
    settings.RETRY_MAX_SECONDS = 0.2
    yield live_server
    # The fake parser finishes jobs on background threads that call back into the (session-wide) live
    # server; let them end before the next test, so none reaches the database between tests.
    for thread in threading.enumerate():
        if thread.name.startswith("fake-parse-"):
            thread.join(timeout=10)
    # The clients keep their connections to the live server (each holds a server thread and its database
    # session) between documents; a test leaves none behind.
    from ingestion.providers import pool

    pool.close_all()


@pytest.fixture
def faults(db):
    """Set fake faults for a service at run time, as an operator would through the control endpoint."""
    from fakes.models import FaultSettings

    def apply(service: str, **knobs):
        FaultSettings.objects.update_or_create(service=service, defaults={"config": knobs})

    return apply
