"""Real processes for end-to-end tests: qclusters pointed at the test database and the fakes of a live server."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port nobody listens on (for a server to start on, or to find closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database the tests use (the test database, not the development one)."""
    s = connection.settings_dict
    if str(s["HOST"]).startswith("/"):
        return f"postgresql://{s['USER']}:{s['PASSWORD'] or ''}@/{s['NAME']}?host={s['HOST']}"
    return f"postgresql://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class QCluster:
    """One ``manage.py qcluster`` in its own process group, so a kill takes its workers down too."""

    def __init__(self, live_url: str, log_path: Path, **env):
        self.log_path = log_path
        self.env = {**os.environ, "DATABASE_URL": database_url(), "LLAMAPARSE_BASE_URL": f"{live_url}/fakes/llamaparse",
                    "OPENAI_BASE_URL": f"{live_url}/fakes/openai/v1", "WEBHOOK_BASE_URL": live_url,
                    "QCLUSTER_LOG_LEVEL": "INFO", **{k: str(v) for k, v in env.items()}}
        self.process: subprocess.Popen | None = None

    def start(self) -> "QCluster":
        self._log = open(self.log_path, "a+")
        self.process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def pids(self) -> set[int]:
        """The cluster's own pid and every worker's."""
        try:
            parent = psutil.Process(self.process.pid)
            return {parent.pid} | {child.pid for child in parent.children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def kill(self) -> None:
        """SIGKILL the whole cluster at once, as when its machine or container dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        try:  # workers left behind by a cluster that did not shut down cleanly
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]
