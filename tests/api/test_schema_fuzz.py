"""Schemathesis against /api/schema/: generated requests for every operation, in-process over WSGI.

Bounded (a fixed number of examples per operation, derandomized, no deadline) so it stays well under
a minute on two cores. Every response must have a documented status, content type and headers and a
body that matches the schema; schema-violating requests must be refused; no request may cause a 5xx.
The embedding fake runs on a live server, so searches reach a working provider.
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

EXAMPLES_PER_OPERATION = 20
# "Schema-valid data must be accepted" cannot hold for an upload or a search: the schema says "a file"
# and "a string", while the API rightly refuses a file that is not a PDF and a query of blanks.
CHECKS_EXCLUDED = [checks.positive_data_acceptance]

schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def fuzz_token(providers, member, api_settings):
    api_settings.API_UPLOADS_PER_DAY = 100_000
    api_settings.API_STATUS_POLLS_PER_MINUTE = 100_000
    api_settings.API_AUTH_ATTEMPTS_PER_MINUTE = 100_000
    api_settings.API_MAX_ACTIVE_JOBS = 100_000
    # As Django's test client does: requests served in-process must not close the test's connection.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield Token.objects.get_or_create(user=member)[0].key
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_matches_its_schema(case, fuzz_token):
    case.call_and_validate(headers={"Authorization": f"Token {fuzz_token}"}, excluded_checks=CHECKS_EXCLUDED)
