"""`manage.py runfakes` serves only the fakes, on gunicorn, to the official SDKs over real HTTP."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx
import openai
import pytest
from django.conf import settings

from fakes.models import FakeParseJob
from samples.generate import build_document
from tests.clusters import database_url, free_port

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from llama_parse import LlamaParse

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fakes_server(transactional_db):
    port = free_port()
    env = dict(os.environ, DATABASE_URL=database_url())  # the test database, so the server sees this test's rows
    process = subprocess.Popen([sys.executable, "manage.py", "runfakes", "--port", str(port), "--workers", "2"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/fakes/health/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"runfakes did not come up:\n{process.stdout.read()}")
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)  # gunicorn: quick shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def test_runfakes_serves_both_fakes_to_the_official_sdks(fakes_server, tmp_path):
    # given the vendors' own base URLs, on the fakes-only server
    pdf = tmp_path / "policy.pdf"
    pdf.write_bytes(build_document(3, seed=4))
    parser = LlamaParse(api_key=settings.LLAMAPARSE_API_KEY, base_url=fakes_server, result_type="markdown",
                        check_interval=0,
                        ignore_errors=False, verbose=False, split_by_page=False,
                        custom_client=httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0)))
    # when
    markdown = parser.load_data(str(pdf))[0].text
    with openai.OpenAI(api_key=settings.OPENAI_API_KEY, base_url=f"{fakes_server}/v1", max_retries=0) as client:
        vectors = client.embeddings.create(input=["copay", "coinsurance"], model="text-embedding-3-small",
                                           dimensions=64)
        models = {model.id for model in client.models.list()}
    # then
    assert markdown.count("\n---\n") == 2 and "## SECTION 2 " in markdown
    assert FakeParseJob.objects.filter(status="SUCCESS").count() == 1  # its state is in this database
    assert [len(item.embedding) for item in vectors.data] == [64, 64] and "text-embedding-3-small" in models


def test_runfakes_serves_the_fakes_under_fakes_too_and_nothing_else(fakes_server, settings):
    headers = {"Authorization": f"Bearer {settings.OPENAI_API_KEY}"}
    assert httpx.get(f"{fakes_server}/fakes/openai/v1/models", headers=headers).status_code == 200
    control = httpx.get(f"{fakes_server}/fakes/control/faults/openai/",
                        headers={"Authorization": f"Bearer {settings.FAKES_CONTROL_TOKEN}"})
    assert control.status_code == 200
    for path in ("/api/v1/documents/", "/admin/", "/health/"):
        assert httpx.get(f"{fakes_server}{path}").status_code == 404
