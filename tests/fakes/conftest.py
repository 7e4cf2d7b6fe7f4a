"""Fixtures for the fakes' tests: official SDK clients and the control endpoint, over real HTTP."""
from __future__ import annotations

import httpx
import openai
import pytest


@pytest.fixture
def openai_client(providers, settings):
    """The official openai SDK pointed at the fake, without its own retries unless a test asks."""
    client = openai.OpenAI(api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def control(providers, settings):
    """The fakes' control endpoint, as an operator calls it: ``control("POST", "openai", json={...})``."""
    http = httpx.Client(base_url=f"{providers.url}/fakes/control/", timeout=10,
                        headers={"Authorization": f"Bearer {settings.FAKES_CONTROL_TOKEN}"})

    def call(method: str, service: str, *, what: str = "faults", **kwargs) -> httpx.Response:
        return http.request(method, f"{what}/{service}/", **kwargs)

    yield call
    http.close()


@pytest.fixture
def received(db):
    """What a fake received, oldest first: ``received("openai")`` → [FakeRequest, ...]."""
    from fakes.models import FakeRequest

    def rows(service: str) -> list:
        return list(FakeRequest.objects.filter(service=service).order_by("id"))

    return rows
