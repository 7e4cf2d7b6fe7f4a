"""The web server's own settings (gunicorn.conf.py) against the clients that talk to it."""
from __future__ import annotations

import runpy
from pathlib import Path

import httpx
from openai._constants import DEFAULT_CONNECTION_LIMITS

CONFIG = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def test_the_server_keeps_idle_connections_longer_than_its_clients_do():
    # A client must drop an idle connection before the server closes it, or a request sent on it as the
    # server closes it fails without an answer (the local stack's clients talk to this very server).
    keepalive = runpy.run_path(str(CONFIG))["keepalive"]
    assert keepalive > httpx.Limits().keepalive_expiry
    assert keepalive > DEFAULT_CONNECTION_LIMITS.keepalive_expiry
