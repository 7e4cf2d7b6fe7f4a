"""The parser callback: per-job HMAC, timestamp window, replays refused and recorded, duplicates inert."""
from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from fakes.models import FakeParseJob
from ingestion import services
from ingestion.models import Event, Job, WebhookDelivery
from ingestion.pipeline.runner import run_job_sync
from ingestion.statuses import Status
from ingestion.webhooks import webhook_signature


@pytest.fixture
def waiting_job(member, pdf_bytes):
    """A job whose file was submitted to the parser and that waits for the result."""
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    Job.objects.filter(pk=job.pk).update(status=Status.PARSE_QUEUED, parse_job_id="parser-job-1")
    job.refresh_from_db()
    return job


def deliver(job, *, status="SUCCESS", timestamp=None, secret=None, signature=None, parse_job_id="parser-job-1",
            body=None):
    body = body if body is not None else json.dumps({"job_id": parse_job_id, "status": status}).encode()
    timestamp = str(int(time.time())) if timestamp is None else timestamp
    if signature is None:
        signature = webhook_signature(body=body, timestamp=timestamp, secret=secret or job.webhook_secret)
    return APIClient().generic("POST", f"/api/v1/webhooks/llamaparse/{job.id}/", body,
                               content_type="application/json", HTTP_X_WEBHOOK_TIMESTAMP=timestamp,
                               HTTP_X_WEBHOOK_SIGNATURE=signature)


def test_each_job_gets_its_own_webhook_secret(member, pdf_bytes):
    first = services.document_upload(owner=member, data=pdf_bytes, filename="a.pdf").job
    services.job_cancel(job=first)
    second = services.job_retry(job=first)
    assert len(first.webhook_secret) >= 32 and first.webhook_secret != second.webhook_secret


def test_signed_callback_wakes_the_parse_stage_once(waiting_job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as wakeups:
        response = deliver(waiting_job)
    assert response.status_code == 202
    assert response.json() == {"result": "accepted", "woke_parse_stage": True}
    assert len(wakeups) == 1
    assert Event.objects.filter(job=waiting_job, type="webhook_received").count() == 1


def test_same_news_sent_again_is_answered_200_and_changes_nothing(waiting_job, django_capture_on_commit_callbacks):
    # given the parser's callback was accepted
    deliver(waiting_job, timestamp=str(int(time.time()) - 5))
    # when the parser sends the same news again, signed afresh
    with django_capture_on_commit_callbacks() as wakeups:
        response = deliver(waiting_job)
    # then
    assert response.status_code == 200 and response.json() == {"result": "duplicate", "woke_parse_stage": False}
    assert wakeups == []
    assert list(WebhookDelivery.objects.order_by("received_at").values_list("accepted", flat=True)) == [True, False]


def test_replayed_delivery_is_refused_with_409_and_recorded(waiting_job, django_capture_on_commit_callbacks):
    # given a delivery that was accepted
    timestamp = str(int(time.time()))
    deliver(waiting_job, timestamp=timestamp)
    # when exactly the same request arrives again
    with django_capture_on_commit_callbacks() as wakeups:
        response = deliver(waiting_job, timestamp=timestamp)
    # then
    assert response.status_code == 409 and response.json()["error"]["code"] == "WEBHOOK_REPLAY"
    assert wakeups == []
    refused = Event.objects.get(job=waiting_job, type="webhook_replay_refused")
    assert refused.code == "WEBHOOK_REPLAY" and refused.severity == "warning"
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.parametrize("kwargs, status, code", [
    ({"secret": "not-this-jobs-secret"}, 401, "WEBHOOK_BAD_SIGNATURE"),
    ({"signature": "sha256=" + "0" * 64}, 401, "WEBHOOK_BAD_SIGNATURE"),
    ({"signature": ""}, 401, "WEBHOOK_UNSIGNED"),
    ({"timestamp": str(int(time.time()) - 3600)}, 401, "WEBHOOK_STALE"),
    ({"timestamp": "yesterday"}, 401, "WEBHOOK_STALE"),
    ({"parse_job_id": "someone-elses-parser-job"}, 409, "WEBHOOK_WRONG_JOB"),
    ({"body": b"[1, 2, 3]"}, 400, "WEBHOOK_MALFORMED"),
])
def test_refused_callbacks_change_nothing(waiting_job, django_capture_on_commit_callbacks, kwargs, status, code):
    events = Event.objects.count()
    with django_capture_on_commit_callbacks() as wakeups:
        response = deliver(waiting_job, **kwargs)
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert wakeups == [] and Event.objects.count() == events and not WebhookDelivery.objects.exists()
    waiting_job.refresh_from_db()
    assert waiting_job.status == Status.PARSE_QUEUED


def test_callback_signed_with_another_jobs_secret_is_refused(member, waiting_job, pdf_bytes):
    other = services.document_upload(owner=member, data=pdf_bytes + b"\n%other", filename="o.pdf").job
    response = deliver(waiting_job, secret=other.webhook_secret)
    assert response.status_code == 401


def test_callback_for_an_unknown_job_is_404(waiting_job):
    response = APIClient().post(f"/api/v1/webhooks/llamaparse/{uuid.uuid4()}/", {}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "WEBHOOK_UNKNOWN_JOB"


def _wait_for(predicate, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_pipeline_through_the_api_with_doubled_callbacks_processes_once(providers, faults, member, other_member,
                                                                        pdf_bytes):
    # given the fake parser sends every callback twice
    faults("llamaparse", webhook_duplicate_rate=1)
    token = Token.objects.create(user=member).key
    other_token = Token.objects.create(user=other_member).key
    # closed at the end: a kept-alive connection would keep a server thread (and its database session) open
    def as_member(key: str) -> httpx.Client:
        return httpx.Client(base_url=providers.url, headers={"Authorization": f"Token {key}"}, timeout=30)

    with as_member(token) as client, as_member(other_token) as other:
        _upload_process_and_search(client, other, pdf_bytes)


def _upload_process_and_search(client, other, pdf_bytes):
    # when a PDF is uploaded through the API and processed
    response = client.post("/api/v1/documents/", files={"file": ("policy.pdf", pdf_bytes, "application/pdf")})
    assert response.status_code == 201, response.text
    job = Job.objects.get(pk=response.json()["job"]["id"])
    assert run_job_sync(job.id) == Status.COMPLETE
    # then the parser signed its callbacks with this job's own secret, and only one counted
    job.refresh_from_db()
    assert FakeParseJob.objects.get(pk=job.parse_job_id).webhook_secret == job.webhook_secret
    assert _wait_for(lambda: FakeParseJob.objects.get(pk=job.parse_job_id).webhook_deliveries >= 2)
    # the copy is a refused replay when signed in the same second, else an authentic duplicate
    second_copies = lambda: (WebhookDelivery.objects.filter(job=job, accepted=False).count()  # noqa: E731
                             + Event.objects.filter(job=job, type="webhook_replay_refused").count())
    assert _wait_for(lambda: second_copies() == 1)
    assert WebhookDelivery.objects.filter(job=job, accepted=True).count() == 1
    assert Event.objects.filter(job=job, type="webhook_received").count() == 1
    assert Event.objects.filter(job=job, type="stage_finished", stage="parse").count() == 1
    # and the member sees the result through the API
    detail = client.get(f"/api/v1/documents/{job.document_id}/").json()
    assert detail["status"] == "complete" and detail["progress"]["total_pct"] == 100 and detail["chunk_count"] > 0
    hits = client.post("/api/v1/search/", json={"query": "grace period premiums", "k": 3}).json()["results"]
    assert hits and all(hit["document_id"] == str(job.document_id) for hit in hits)
    # while another member's hybrid search over the same words finds nothing of it
    assert other.post("/api/v1/search/", json={"query": "grace period premiums", "k": 3}).json() == {"results": []}


def test_fake_parser_signs_with_its_configured_key_when_given_none(providers, member, pdf_bytes, settings):
    # given a job whose secret is the fake's default key, submitted without a webhook_secret
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    Job.objects.filter(pk=job.pk).update(webhook_secret=settings.FAKES_LLAMAPARSE_WEBHOOK_SECRET)
    url = f"{providers.url}/api/v1/webhooks/llamaparse/{job.id}/"
    # when
    response = httpx.post(f"{providers.url}/fakes/llamaparse/api/v1/parsing/upload",
                          headers={"Authorization": f"Bearer {settings.LLAMAPARSE_API_KEY}"},
                          files={"file": ("p.pdf", pdf_bytes, "application/pdf")}, data={"webhook_url": url})
    # then its callback verifies against that key
    assert response.status_code == 200
    assert _wait_for(lambda: WebhookDelivery.objects.filter(job=job, accepted=True).exists())


def test_unsigned_callbacks_are_ignored_and_polling_still_finishes_the_job(providers, member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    refused = httpx.post(f"{providers.url}/api/v1/webhooks/llamaparse/{job.id}/",
                         json={"job_id": "x", "status": "SUCCESS"})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "WEBHOOK_UNSIGNED"
    assert run_job_sync(job.id) == Status.COMPLETE
