"""Alert rules open and resolve incidents once, and deliver them by email and to a real webhook receiver."""
from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule
from model_bakery import baker

from ingestion import services
from ingestion.models import WorkerHeartbeat
from monitoring.alerts import alerts_evaluate, alerts_evaluate_if_stale
from monitoring.models import Alert

pytestmark = pytest.mark.django_db


@pytest.fixture
def webhook_receiver():
    """A real HTTP server on loopback that records the JSON bodies posted to it."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def channels(settings, webhook_receiver):
    url, received = webhook_receiver
    settings.ALERT_EMAIL_RECIPIENTS = ["oncall@example.com"]
    settings.ALERT_WEBHOOK_URL = url
    return received


def test_no_heartbeat_opens_an_alert_and_notifies_email_and_webhook(channels):
    # when the rules run with no qcluster ever seen
    outcome = alerts_evaluate()
    # then one alert is open and both channels were told
    assert outcome["worker_heartbeat"] == "opened"
    alert = Alert.objects.get(rule="worker_heartbeat")
    assert alert.state == "open" and "No qcluster has ever written a heartbeat" in alert.message
    assert len(mail.outbox) == 1 and "OPENED: No worker heartbeat" in mail.outbox[0].subject
    assert mail.outbox[0].to == ["oncall@example.com"]
    assert [(body["event"], body["rule"]) for body in channels] == [("opened", "worker_heartbeat")]
    assert {n["channel"] for n in alert.notified if n["ok"]} == {"email", "webhook"}


def test_a_firing_rule_keeps_one_alert_and_notifies_once(channels):
    alerts_evaluate()
    second = alerts_evaluate()
    assert second["worker_heartbeat"] == "firing"
    assert Alert.objects.filter(rule="worker_heartbeat").count() == 1
    assert len(mail.outbox) == 1 and len(channels) == 1


def test_backlog_alert_resolves_when_the_old_job_is_gone(channels, make_job, settings):
    # given a job that has waited longer than the limit
    settings.ALERT_BACKLOG_AGE_SECONDS = 300
    job = make_job("uploaded", created_ago=900)
    assert alerts_evaluate()["backlog_age"] == "opened"
    assert Alert.objects.get(rule="backlog_age").last_value == pytest.approx(900, abs=5)
    # when an operator cancels it and the rules run again
    services.job_cancel(job=job)
    outcome = alerts_evaluate()
    # then the incident is closed with its time, and the resolution was delivered
    assert outcome["backlog_age"] == "resolved"
    alert = Alert.objects.get(rule="backlog_age")
    assert alert.state == "resolved" and alert.resolved_at is not None
    assert [b["event"] for b in channels if b["rule"] == "backlog_age"] == ["opened", "resolved"]


def test_failure_rate_fires_only_above_the_threshold_with_enough_jobs(make_job, settings):
    settings.ALERT_FAILURE_RATE = 0.5
    settings.ALERT_FAILURE_MIN_JOBS = 4
    make_job("failed_parse", finished_ago=60, last_error_code="PARSE_NOT_A_PDF")
    make_job("failed_parse", finished_ago=60, last_error_code="PARSE_NOT_A_PDF")
    assert alerts_evaluate()["failure_rate"] == "ok"  # 2 ended jobs: too few to judge
    make_job("complete", finished_ago=60)
    make_job("failed_embedding", finished_ago=60, last_error_code="EMBED_RATE_LIMITED")
    assert alerts_evaluate()["failure_rate"] == "opened"  # 3 of 4 failed
    alert = Alert.objects.get(rule="failure_rate")
    assert alert.last_value == pytest.approx(0.75) and "PARSE_NOT_A_PDF ×2" in alert.message


def test_provider_error_rate_fires_for_the_failing_provider(make_job, make_event, settings):
    settings.ALERT_PROVIDER_ERROR_RATE = 0.25
    settings.ALERT_PROVIDER_MIN_CALLS = 4
    job = make_job()
    make_event(job, "stage_finished", stage="embed", payload={"provider_calls": 3})
    for _ in range(3):
        make_event(job, "retry_scheduled", stage="embed", code="EMBED_PROVIDER_ERROR")
    assert alerts_evaluate()["provider_error_rate"] == "opened"
    assert "openai: 3 failed of 6 calls" in Alert.objects.get(rule="provider_error_rate").message


def test_a_failing_webhook_is_recorded_and_the_alert_still_opens(settings):
    settings.ALERT_WEBHOOK_URL = "http://127.0.0.1:9/hook"  # nothing listens
    alerts_evaluate()
    alert = Alert.objects.get(rule="worker_heartbeat")
    assert alert.state == "open" and alert.notified[0]["channel"] == "webhook" and not alert.notified[0]["ok"]


def test_evaluation_when_stale_runs_only_if_the_schedule_has_not(db):
    assert alerts_evaluate_if_stale(max_age_seconds=120) is True  # never evaluated: runs
    assert alerts_evaluate_if_stale(max_age_seconds=120) is False  # just evaluated: skipped


def test_a_rule_firing_again_opens_a_new_incident_beside_the_resolved_one(channels):
    # given an alert opened and later resolved by hand-made history, the next evaluation opens a new one
    baker.make(Alert, rule="worker_heartbeat", state="resolved", opened_at=timezone.now() - timedelta(hours=1),
               resolved_at=timezone.now() - timedelta(minutes=30), last_evaluated_at=timezone.now(), message="old")
    baker.make(WorkerHeartbeat, worker="h:1", seen_at=timezone.now() - timedelta(hours=2))
    alerts_evaluate()
    assert list(Alert.objects.filter(rule="worker_heartbeat").values_list("state", flat=True)
                .order_by("opened_at")) == ["resolved", "open"]


def test_the_migration_schedules_alert_evaluation_every_minute(db):
    call_command("migrate", "monitoring", "0001_alert", verbosity=0)
    assert not Schedule.objects.filter(name="monitoring-alerts").exists()
    call_command("migrate", "monitoring", verbosity=0)
    schedule = Schedule.objects.get(name="monitoring-alerts")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("monitoring.tasks.evaluate_alerts", "I", 1)
    # and the scheduled function evaluates every rule
    from django.utils.module_loading import import_string

    assert set(import_string(schedule.func)()) == {"failure_rate", "backlog_age", "worker_heartbeat",
                                                   "provider_error_rate"}


def test_alert_history_is_listed_read_only_in_the_admin(client, django_user_model):
    alerts_evaluate()
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-for-tests"))
    listing = client.get("/admin/monitoring/alert/")
    assert listing.status_code == 200 and b"No worker heartbeat" in listing.content
    assert client.get("/admin/monitoring/alert/add/").status_code == 403
