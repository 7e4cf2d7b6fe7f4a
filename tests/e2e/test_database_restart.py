"""A PostgreSQL restart mid-run costs a delay, nothing else: web and workers reconnect and finish every document.

Everything runs in its own processes against a separate embedded server, so restarting it touches
nothing but this test.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from navigator import embedded_db
from samples.generate import build_document
from tests.clusters import free_port

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"complete", "failed_parse", "failed_chunking", "failed_embedding", "duplicate", "cancelled"}

pytestmark = pytest.mark.slow


@pytest.fixture
def stack(tmp_path):
    pgdata = Path(tempfile.mkdtemp(prefix="nvrs", dir="/tmp")) / "pg"
    uri = embedded_db.ensure_running(pgdata)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATABASE_URL": uri, "NAVIGATOR_URL": url, "NAVIGATOR_DATA_DIR": str(tmp_path / "data"),
           "LLAMAPARSE_BASE_URL": f"{url}/fakes/llamaparse", "OPENAI_BASE_URL": f"{url}/fakes/openai/v1",
           "WEBHOOK_BASE_URL": url, "QCLUSTER_NAME": "restart-test", "QCLUSTER_LOG_LEVEL": "INFO",
           "RETRY_BASE_SECONDS": "0.5", "RETRY_MAX_SECONDS": "3", "API_MAX_ACTIVE_JOBS": "100",
           "API_STATUS_POLLS_PER_MINUTE": "10000"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True,
                   timeout=300)
    key = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c",
         "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
         "print(Token.objects.get_or_create(user=User.objects.create_user('restart-member'))[0].key)"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]
    logs = {name: open(tmp_path / f"{name}.log", "w+") for name in ("web", "worker")}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    processes = [
        subprocess.Popen([str(gunicorn), "navigator.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                          "--threads", "8", "--no-control-socket"], cwd=ROOT, env=env, stdout=logs["web"],
                         stderr=subprocess.STDOUT, start_new_session=True),
        subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, stdout=logs["worker"],
                         stderr=subprocess.STDOUT, start_new_session=True),
    ]
    client = httpx.Client(base_url=url, headers={"Authorization": f"Token {key}"}, timeout=30)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.get("/api/v1/documents/").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the web server did not start"
        time.sleep(0.3)
    yield client, pgdata
    client.close()
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    embedded_db.stop(pgdata)
    for name, log in logs.items():
        log.seek(0)
        print(f"--- {name}\n{log.read()[-2000:]}")


def _statuses(client: httpx.Client) -> dict[str, str] | None:
    try:
        response = client.get("/api/v1/documents/", params={"limit": 100})
    except httpx.TransportError:
        return None
    if response.status_code != 200:  # the database is still coming back
        return None
    return {d["id"]: d["status"] for d in response.json()["results"]}


def test_a_postgresql_restart_mid_run_costs_a_delay_and_nothing_else(stack):
    client, pgdata = stack
    # given documents being processed
    for n in range(6):
        response = client.post("/api/v1/documents/", files={"file": (f"p{n}.pdf", build_document(8 + n, seed=300 + n),
                                                                      "application/pdf")})
        assert response.status_code == 201, response.text
    deadline = time.monotonic() + 60
    while "complete" not in (_statuses(client) or {}).values():
        assert time.monotonic() < deadline, "nothing completed before the restart"
        time.sleep(0.2)
    # when PostgreSQL restarts under the web server and the workers
    restarted_at = time.monotonic()
    embedded_db.stop(pgdata)
    time.sleep(2)
    embedded_db.ensure_running(pgdata)
    # then every document still completes, with its passages
    deadline = time.monotonic() + 240
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        statuses = _statuses(client) or statuses
        if len(statuses) == 6 and set(statuses.values()) <= TERMINAL:
            break
        time.sleep(0.5)
    print(f"\nall documents ended {time.monotonic() - restarted_at:.1f}s after the restart began")
    assert set(statuses.values()) == {"complete"}, statuses
    for document_id in statuses:
        response = client.get(f"/api/v1/documents/{document_id}/")
        assert response.status_code == 200 and response.json()["chunk_count"] > 0, response.text
