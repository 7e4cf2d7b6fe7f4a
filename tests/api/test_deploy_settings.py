"""Production settings: `manage.py check --deploy` is clean, and DEBUG off without SECRET_KEY refuses to start."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {key: value for key, value in os.environ.items()
            if not key.startswith(("SECURE_", "SESSION_COOKIE", "CSRF_COOKIE")) and key not in ("DEBUG", "SECRET_KEY")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env}, capture_output=True,
                          text=True, timeout=120)


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "navigator.example.org",
              "LLAMAPARSE_BASE_URL": "https://api.cloud.llamaindex.ai", "OPENAI_BASE_URL": "https://api.openai.com/v1",
              "API_TRUSTED_PROXY_COUNT": "1"}


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


def test_production_does_not_serve_the_fakes_unless_asked_and_check_deploy_warns_when_asked():
    probe = ("from django.urls import resolve, Resolver404\n"
             "try:\n    resolve('/fakes/openai/v1/models'); print('served')\n"
             "except Resolver404:\n    print('not served')")
    assert _run("shell", "-c", probe, **PRODUCTION).stdout.split()[-2:] == ["not", "served"]
    assert _run("shell", "-c", probe, **{**PRODUCTION, "FAKES_ENABLED": "true"}).stdout.splitlines()[-1] == "served"
    result = _run("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, FAKES_ENABLED="true")
    assert result.returncode != 0 and "ingestion.W001" in result.stdout + result.stderr


@pytest.mark.parametrize("change, warning", [
    ({"LLAMAPARSE_BASE_URL": None, "OPENAI_BASE_URL": None}, "ingestion.W002"),  # left at the fakes
    ({"API_TRUSTED_PROXY_COUNT": "0"}, "ingestion.W003"),  # every client would be the proxy
])
def test_check_deploy_names_production_settings_left_at_their_local_values(change, warning):
    env = {key: value for key, value in {**PRODUCTION, **change}.items() if value is not None}
    result = _run("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode != 0 and warning in result.stdout + result.stderr
    assert _run("check", **env).returncode == 0  # a warning for the deploy check, not a server that won't start
