"""The embedded PostgreSQL's sharp edges, each against a real server in a short temporary dir."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2
import pytest

from navigator import embedded_db

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pgdata():
    base = Path(tempfile.mkdtemp(prefix="nvpg", dir="/tmp"))
    path = base / "pg"
    yield path
    embedded_db.stop(path)


def _query(uri: str, sql: str):
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0] if cur.description else None
    finally:
        conn.close()


def test_start_creates_a_tuned_server_with_pgvector(pgdata):
    uri = embedded_db.ensure_running(pgdata)
    assert _query(uri, "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    assert _query(uri, "SHOW max_connections") == embedded_db.TUNING["max_connections"]
    assert _query(uri, "SHOW shared_buffers") == embedded_db.TUNING["shared_buffers"]
    assert embedded_db.postmaster_is_live(pgdata)


def test_several_processes_starting_together_on_a_new_dir_share_one_server(pgdata):
    code = "import sys; from navigator import embedded_db; print(embedded_db.ensure_running(sys.argv[1]))"
    processes = [subprocess.Popen([sys.executable, "-c", code, str(pgdata)], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], [err[-500:] for _, err in results]
    uris = {out.strip().splitlines()[-1] for out, _ in results}
    assert len(uris) == 1
    assert _query(uris.pop(), "SELECT 1") == 1


def test_server_recovers_after_the_postmaster_is_killed(pgdata):
    # given a server with a committed row
    uri = embedded_db.ensure_running(pgdata)
    _query(uri, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
    pid = int((pgdata / "postmaster.pid").read_text().split()[0])
    # when its postmaster is killed with kill -9
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(timeout=10) if psutil.pid_exists(pid) else None
    for child in psutil.process_iter(["cmdline"]):
        if child.info["cmdline"] and str(pgdata) in " ".join(child.info["cmdline"]):
            child.kill()
    time.sleep(0.5)
    assert not embedded_db.postmaster_is_live(pgdata)
    # then the next start removes the stale pid file and the data survived
    uri = embedded_db.ensure_running(pgdata)
    assert _query(uri, "SELECT v FROM kept") == 42


def test_a_pid_file_naming_another_live_process_is_treated_as_stale(pgdata):
    embedded_db.ensure_running(pgdata)
    embedded_db.stop(pgdata)
    # a reused PID: postmaster.pid names a live process that is not this data dir's postgres
    lines = ["%d" % os.getpid(), str(pgdata), "0", "5432", str(pgdata), "", "0 0", "ready"]
    (pgdata / "postmaster.pid").write_text("\n".join(lines) + "\n")
    assert not embedded_db.postmaster_is_live(pgdata)
    uri = embedded_db.ensure_running(pgdata)
    assert _query(uri, "SELECT 1") == 1


def test_stop_stops_the_server(pgdata):
    embedded_db.ensure_running(pgdata)
    assert embedded_db.stop(pgdata) is True
    assert not embedded_db.postmaster_is_live(pgdata)
    assert embedded_db.stop(pgdata) is False


def test_a_data_dir_path_too_long_for_the_socket_is_refused_clearly():
    with pytest.raises(embedded_db.EmbeddedDatabaseError, match="under 90 characters"):
        embedded_db.ensure_running(Path("/tmp/" + "x" * 100))
