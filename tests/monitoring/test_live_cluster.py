"""With a real qcluster process and a real HTTP server: the deployment gate and the worker health check."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from ingestion.models import Document, WorkerHeartbeat
from tests.clusters import QCluster, database_url, free_port

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def worker_check(url: str) -> str:
    return httpx.get(f"{url}/health/", params={"format": "json"}, timeout=30).json()["WorkerHeartbeatFresh()"]


@pytest.fixture
def qcluster(providers, tmp_path):
    """A qcluster subprocess on the test database whose workers have started (and said so)."""
    cluster = QCluster(providers.url, tmp_path / "qcluster.log").start()
    process = cluster.process
    for _ in range(300):  # bounded: at most 30 s
        if WorkerHeartbeat.objects.exists() and worker_check(providers.url) == "OK":
            break
        time.sleep(0.1)
    yield process
    cluster.stop()
    print(cluster.log_tail())


def test_verify_deployment_passes_against_a_running_deployment(qcluster, providers, capsys):
    # when the gate runs against the live server with a worker cluster
    call_command("verify_deployment", url=providers.url, timeout=90)
    # then every step passed and the canary is gone
    out = capsys.readouterr().out
    for step in ("health", "canary-account", "upload", "process", "search", "delete"):
        assert f"[ok] {step}" in out
    assert "deployment verified" in out
    assert not Document.objects.filter(owner__username="deploy-canary").exists()


def test_stopping_the_qcluster_turns_health_red_within_a_minute_and_fails_the_gate(qcluster, providers):
    # given a healthy worker cluster
    assert worker_check(providers.url) == "OK"
    # when it stops
    qcluster.terminate()
    qcluster.wait(timeout=30)
    stopped = time.monotonic()
    result = "OK"
    while time.monotonic() - stopped < 60 and result == "OK":  # bounded: the promise is "within a minute"
        time.sleep(0.5)
        result = worker_check(providers.url)
    print(f"health turned red {time.monotonic() - stopped:.1f}s after the qcluster stopped")
    # then /health/ names it, and the deployment gate fails at the health step
    assert "No qcluster is running" in result
    with pytest.raises(CommandError, match=r"failed at step 'health': .*WorkerHeartbeatFresh.*No qcluster is running"):
        call_command("verify_deployment", url=providers.url, timeout=3)


def test_verify_deployment_without_any_qcluster_fails_naming_the_health_step(providers):
    with pytest.raises(CommandError, match=r"failed at step 'health': .*No qcluster has ever reported"):
        call_command("verify_deployment", url=providers.url, timeout=3)
    assert not Document.objects.exists()  # nothing was uploaded


def test_verify_deployment_fails_naming_the_process_step_when_no_worker_takes_the_canary(providers, capsys):
    # given a deployment whose health passes (a token given; a cluster status and heartbeat as a
    # qcluster leaves them) but whose workers take nothing: the canary can only time out
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.conf import Conf
    from django_q.signing import SignedPackage
    from django_q.status import Stat, Status

    status = Status(pid=1, cluster_id="00000000-0000-0000-0000-000000000001")
    status.status = Conf.IDLE
    broker = get_broker()
    broker.set_stat(Stat.get_key(status.cluster_id), SignedPackage.dumps(status, True), 600)
    WorkerHeartbeat.objects.create(worker="idle-host:1", seen_at=timezone.now())
    # when
    with pytest.raises(CommandError, match=r"failed at step 'process': the canary was still 'uploaded'.*qcluster"):
        call_command("verify_deployment", url=providers.url, timeout=5)
    # then the canary it uploaded was removed again
    assert "[ok] upload" in capsys.readouterr().out
    assert not Document.objects.exists()


GUNICORN_WORKERS, GUNICORN_THREADS = 2, 4
APPLICATION_NAME = "navigator-gunicorn-test"


@pytest.fixture
def gunicorn(db, tmp_path):
    """The production web server (as in the Procfile) on the test database, on a free loopback port."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # As `make run` does: the same server answers the provider probes with its fakes.
    env = {**os.environ, "DATABASE_URL": f"{database_url()}{'&' if '?' in database_url() else '?'}"
                                          f"application_name={APPLICATION_NAME}", "NAVIGATOR_URL": url}
    log = open(tmp_path / "gunicorn.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "navigator.wsgi", "--bind", f"127.0.0.1:{port}",
                                "--workers", str(GUNICORN_WORKERS), "--threads", str(GUNICORN_THREADS)], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    for _ in range(200):  # bounded: at most 20 s
        try:
            httpx.get(f"{url}/favicon.ico", timeout=2)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=30)


def test_health_checks_under_gunicorn_do_not_leave_database_connections_open(gunicorn):
    def server_connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APPLICATION_NAME])
            return cursor.fetchone()[0]

    # when the server answers sixty health calls (five of the eight checks use the database, in pool threads)
    for _ in range(60):
        worker_check(gunicorn)
    # then it holds at most one persistent connection per request thread, none per check run
    held = server_connections()
    print(f"database connections held by gunicorn after 60 /health/ calls: {held}")
    assert held <= GUNICORN_WORKERS * GUNICORN_THREADS
