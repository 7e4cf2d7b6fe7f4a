"""The dashboard, /health/ and /metrics over HTTP, on known data."""
from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.urls import reverse
from django.utils import timezone
from model_bakery import baker
from prometheus_client.parser import text_string_to_metric_families

from ingestion.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("operator", password="pw-for-tests", is_staff=True)


def metric_samples(text: str) -> dict:
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


# --- dashboard ------------------------------------------------------------------------------------

def test_dashboard_redirects_anonymous_visitors_to_the_login(client):
    response = client.get("/monitoring/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_dashboard_refuses_a_member_who_is_not_staff(client, member):
    client.force_login(member)
    assert client.get("/monitoring/").status_code == 403


def test_dashboard_shows_staff_the_numbers_and_links_stuck_and_failed_jobs_to_the_admin(client, staff, providers,
                                                                                        make_job, now):
    # given a failed job and a job whose worker died
    failed = make_job("failed_parse", finished_ago=30, last_error_code="PARSE_ENCRYPTED_PDF",
                      last_error_message="The PDF is password-protected.")
    stuck = make_job("chunking", created_ago=300, lease_owner="gone", lease_expires_at=now - timedelta(seconds=60))
    client.force_login(staff)
    # when
    response = client.get("/monitoring/")
    # then
    body = response.content.decode()
    assert response.status_code == 200
    assert reverse("admin:ingestion_job_change", args=[failed.pk]) in body
    assert reverse("admin:ingestion_job_change", args=[stuck.pk]) in body and "lease_expired" in body
    assert "PARSE_ENCRYPTED_PDF" in body and "<svg" in body
    assert 'http-equiv="refresh"' in body
    assert "No qcluster reports status" in body  # no worker in this test
    assert "No worker heartbeat" in body  # ...so the rule's alert is open and shown
    assert "http://" not in body.split("<body>")[0].replace(providers.url, "")  # nothing loaded from elsewhere


# --- health ---------------------------------------------------------------------------------------

def health(url: str) -> tuple[int, dict]:
    response = httpx.get(f"{url}/health/", params={"format": "json"}, timeout=30)
    return response.status_code, response.json()


def test_health_json_names_the_missing_worker_and_passes_the_rest(providers):
    status, checks = health(providers.url)
    assert status == 500
    assert checks["WorkerHeartbeatFresh()"].startswith("Unavailable: No qcluster has ever reported")
    assert checks["ProviderReachable(provider='llamaparse')"] == "OK"
    assert checks["ProviderReachable(provider='openai')"] == "OK"
    for name in ("Database(alias='default')", "Storage(alias='default')", "MigrationsApplied()",
                 "BacklogAgeUnderThreshold()"):
        assert checks[name] == "OK"


def test_an_uptime_poll_of_health_alone_opens_the_no_worker_alert(providers):
    from monitoring.models import Alert

    # with every qcluster down, the rules' schedule stops with them: nobody views the dashboard
    health(providers.url)
    alert = Alert.objects.get(rule="worker_heartbeat")
    assert alert.state == "open"


def test_health_is_red_while_a_heartbeat_exists_but_no_cluster_runs(providers):
    # given a qcluster wrote a heartbeat a moment ago and has stopped since
    baker.make(WorkerHeartbeat, worker="host:1", seen_at=timezone.now())
    _, checks = health(providers.url)
    assert "No qcluster is running" in checks["WorkerHeartbeatFresh()"]


def test_health_turns_red_when_the_backlog_is_older_than_the_limit(providers, make_job, settings):
    settings.BACKLOG_MAX_AGE_SECONDS = 300
    make_job("uploaded", created_ago=600)
    _, checks = health(providers.url)
    assert "oldest of 1 waiting jobs is 600s old" in checks["BacklogAgeUnderThreshold()"]


def test_health_names_a_provider_that_refuses_the_key(providers, settings):
    settings.OPENAI_API_KEY = "sk-wrong"
    _, checks = health(providers.url)
    assert "API key was refused (HTTP 401)" in checks["ProviderReachable(provider='openai')"]
    assert checks["ProviderReachable(provider='llamaparse')"] == "OK"


def test_health_names_an_unreachable_provider(providers, settings):
    settings.LLAMAPARSE_BASE_URL = "http://127.0.0.1:9/fakes/llamaparse"  # discard port: nothing listens
    _, checks = health(providers.url)
    assert "llamaparse: unreachable" in checks["ProviderReachable(provider='llamaparse')"]


def test_health_skips_llamaparse_with_the_local_parser(providers, settings):
    settings.PARSER_BACKEND = "local"
    settings.LLAMAPARSE_BASE_URL = "http://127.0.0.1:9/nothing"
    _, checks = health(providers.url)
    assert checks["ProviderReachable(provider='llamaparse')"] == "OK"


@pytest.mark.parametrize("setting, path", [("OPENAI_BASE_URL", "/nothing/v1"),
                                           ("LLAMAPARSE_BASE_URL", "/nothing/llamaparse")])
def test_health_is_red_for_a_provider_address_where_no_api_answers(providers, settings, setting, path):
    # the web server answers 404 there, as a wrong path behind any proxy would: that is not the provider
    setattr(settings, setting, providers.url + path)
    _, checks = health(providers.url)
    provider = "openai" if setting.startswith("OPENAI") else "llamaparse"
    assert f"not its API: check {setting}" in checks[f"ProviderReachable(provider='{provider}')"]


def test_health_skips_openai_with_the_local_embedding_model(providers, settings):
    settings.EMBEDDING_BACKEND = "local"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/nothing"
    _, checks = health(providers.url)
    assert checks["ProviderReachable(provider='openai')"] == "OK"


# --- metrics --------------------------------------------------------------------------------------

def test_metrics_report_statuses_backlog_histograms_provider_calls_and_retries(client, make_job, make_event,
                                                                                 settings):
    settings.METRICS_TOKEN = "scrape-secret"
    # given 2 complete jobs (parse 10 s and 30 s), a waiting job 120 s old, a rate-limited embed retry
    for seconds in (10, 30):
        job = make_job("complete", finished_ago=5)
        make_event(job, "stage_started", stage="parse", ago=100)
        make_event(job, "stage_finished", stage="parse", ago=100 - seconds, payload={"provider_calls": 4})
    waiting = make_job("embedding_queued", created_ago=120)
    make_event(waiting, "retry_scheduled", stage="embed", code="EMBED_RATE_LIMITED")
    # when
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret")
    # then
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    samples = metric_samples(response.content.decode())
    assert samples[("navigator_documents", (("status", "complete"),))] == 2
    assert samples[("navigator_jobs", (("status", "embedding_queued"),))] == 1
    assert samples[("navigator_backlog_jobs", ())] == 1
    assert samples[("navigator_backlog_oldest_age_seconds", ())] == pytest.approx(120, abs=5)
    assert samples[("navigator_stage_duration_seconds_bucket", (("le", "10"), ("stage", "parse")))] == 1
    assert samples[("navigator_stage_duration_seconds_bucket", (("le", "30"), ("stage", "parse")))] == 2
    assert samples[("navigator_stage_duration_seconds_count", (("stage", "parse"),))] == 2
    assert samples[("navigator_provider_calls_total", (("outcome", "ok"), ("provider", "llamaparse")))] == 8
    assert samples[("navigator_provider_calls_total", (("outcome", "EMBED_RATE_LIMITED"), ("provider", "openai")))] == 1
    assert samples[("navigator_retries_total", (("code", "EMBED_RATE_LIMITED"), ("stage", "embed")))] == 1
    assert samples[("navigator_qcluster_clusters", ())] == 0
    assert samples[("navigator_alerts_open", (("rule", "worker_heartbeat"),))] == 1


def test_metrics_require_the_token_when_one_is_configured(client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer sécret").status_code == 401  # not a crash
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


def test_metrics_are_closed_in_production_without_a_token_except_to_staff(client, settings, django_user_model):
    settings.DEBUG, settings.METRICS_TOKEN = False, ""
    refused = client.get("/metrics")
    assert refused.status_code == 403 and b"set METRICS_TOKEN" in refused.content
    client.force_login(django_user_model.objects.create_user("member", password="x"))
    assert client.get("/metrics").status_code == 403
    client.force_login(django_user_model.objects.create_user("operator", password="x", is_staff=True))
    assert client.get("/metrics").status_code == 200

