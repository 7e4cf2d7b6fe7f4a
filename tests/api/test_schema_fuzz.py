"""Schemathesis against /api/schema/: generated requests for every operation, in-process over WSGI.

Bounded (a fixed number of examples per operation, derandomized, no deadline) so it stays well under
a minute on two cores. Every response must have a documented status, content type and headers and a
body that matches the schema; schema-violating requests must be refused; no request may cause a 5xx.
Search runs with the embedding fake on a live server, so it reaches a working provider.
"""
from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi import checks

from navigator.wsgi import application

HYPOTHESIS = settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
# "Schema-valid data must be accepted" cannot hold for an upload or a search: the schema says "a file"
# and "a string", while the API rightly refuses a file that is not a PDF and a query of blanks.
CHECKS_EXCLUDED = [checks.positive_data_acceptance]

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
SEARCH = "/api/v1/search/"


@pytest.fixture
def loose_limits(api_settings):
    for name in ("API_UPLOADS_PER_DAY", "API_STATUS_POLLS_PER_MINUTE", "API_AUTH_ATTEMPTS_PER_MINUTE",
                 "API_MAX_ACTIVE_JOBS"):
        setattr(api_settings, name, 100_000)
    # As Django's test client does: requests served in-process must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def token(member, loose_limits):
    return Token.objects.get_or_create(user=member)[0].key


@schema.exclude(path=SEARCH).parametrize()
@HYPOTHESIS
def test_api_matches_its_schema(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, excluded_checks=CHECKS_EXCLUDED)


@schema.include(path=SEARCH).parametrize()
@HYPOTHESIS
def test_search_matches_its_schema(case, providers, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, excluded_checks=CHECKS_EXCLUDED)


def test_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/documents/{id}/reprocess/" in (tmp_path / "schema.yaml").read_text()


def test_swagger_ui_loads_nothing_from_outside(client):
    page = client.get("/api/docs/").content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/" in page
    assert "https://" not in page and "http://" not in page.replace("http://testserver", "")
