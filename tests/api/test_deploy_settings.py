"""Production settings: `manage.py check --deploy` is clean, and DEBUG off without SECRET_KEY refuses to start."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items()
            if not key.startswith(("SECURE_", "SESSION_COOKIE", "CSRF_COOKIE")) and key not in ("DEBUG", "SECRET_KEY")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "navigator.example.org"}


def test_check_deploy_is_clean_with_production_settings():
    result = _run("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_hsts_is_configurable_and_check_deploy_notices_when_it_is_off():
    result = _run("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, SECURE_HSTS_SECONDS="0")
    assert result.returncode != 0 and "security.W004" in result.stdout + result.stderr


def test_debug_off_without_secret_key_refuses_to_start():
    result = _run("check", DEBUG="false", ALLOWED_HOSTS="navigator.example.org")
    assert result.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in result.stderr
