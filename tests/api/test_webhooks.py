"""The parser callback, as LlamaParse sends it: an unsigned POST of the result to the URL given at
upload. The URL's per-job token is the credential; the body is never trusted; a callback only wakes."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from fakes.llamaparse_views import webhook_body
from fakes.models import FakeParseJob
from ingestion import services
from ingestion.models import Event, Job
from ingestion.pipeline.parse import callback_url_usable, webhook_url_for
from ingestion.pipeline.runner import run_job_sync
from ingestion.statuses import Status

# What LlamaParse POSTs: the result itself, no job id, no signature.
RESULT_BODY = (b'{"txt": "page one", "md": "# Page one", "json": [{"page": 1, "text": "page one", '
               b'"md": "# Page one", "images": []}], "images": []}')


@pytest.fixture
def waiting_job(member, pdf_bytes):
    """A job whose file was submitted to the parser and that waits for the result."""
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    Job.objects.filter(pk=job.pk).update(status=Status.PARSE_QUEUED, parse_job_id="parser-job-1")
    job.refresh_from_db()
    return job


def deliver(job, *, token=None, body=RESULT_BODY):
    return APIClient().generic("POST", f"/api/v1/webhooks/llamaparse/{job.id}/{token or job.webhook_secret}/", body,
                               content_type="application/json")


def test_each_job_gets_its_own_callback_address(member, pdf_bytes, settings):
    settings.WEBHOOK_BASE_URL = "https://navigator.example.org"
    first = services.document_upload(owner=member, data=pdf_bytes, filename="a.pdf").job
    services.job_cancel(job=first)
    second = services.job_retry(job=first)
    assert len(first.webhook_secret) >= 32 and first.webhook_secret != second.webhook_secret
    url = webhook_url_for(first)
    assert url == f"https://navigator.example.org/api/v1/webhooks/llamaparse/{first.id}/{first.webhook_secret}/"
    assert len(url) < 200 and webhook_url_for(second) != url


@pytest.mark.parametrize("url, usable", [
    ("https://navigator.example.org/api/v1/webhooks/llamaparse/x/y/", True),
    ("http://navigator.example.org/api/v1/webhooks/llamaparse/x/y/", False),  # LlamaParse calls HTTPS only
    ("https://203.0.113.7/api/v1/webhooks/llamaparse/x/y/", False),  # a domain name, not an IP address
    ("https://navigator.example.org/" + "a" * 200, False),  # under 200 characters
    ("http://127.0.0.1:8000/api/v1/webhooks/llamaparse/x/y/", True),  # the local stack's own fake parser
    ("http://localhost:8000/api/v1/webhooks/llamaparse/x/y/", True),
])
def test_only_addresses_the_parser_can_call_are_sent(url, usable):
    assert callback_url_usable(url) is usable


def test_an_address_the_parser_cannot_call_is_not_sent(waiting_job, settings):
    settings.WEBHOOK_BASE_URL = "http://navigator.example.org"
    settings.LLAMAPARSE_BASE_URL = "https://api.cloud.llamaindex.ai"
    assert webhook_url_for(waiting_job) == ""
    # the built-in fake parser calls back any address (containers reach each other by plain HTTP names)
    settings.LLAMAPARSE_BASE_URL = "http://fakes:8001/fakes/llamaparse"
    assert webhook_url_for(waiting_job).startswith("http://navigator.example.org/api/v1/webhooks/llamaparse/")


def test_the_callback_wakes_the_parse_stage_once(waiting_job, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as wakeups:
        response = deliver(waiting_job)
    assert response.status_code == 202
    assert response.json() == {"result": "accepted", "woke_parse_stage": True}
    assert len(wakeups) == 1  # the queue message (sent when the transaction commits)
    received = Event.objects.get(job=waiting_job, type="webhook_received")
    assert received.payload == {"parse_job_id": "parser-job-1"}


def test_the_parser_calling_back_again_changes_nothing(waiting_job, django_capture_on_commit_callbacks):
    deliver(waiting_job)
    with django_capture_on_commit_callbacks() as wakeups:
        response = deliver(waiting_job)
    assert response.status_code == 200 and response.json() == {"result": "duplicate", "woke_parse_stage": False}
    assert wakeups == [] and Event.objects.filter(job=waiting_job, type="webhook_received").count() == 1


def test_a_callback_after_the_parse_finished_is_ignored(waiting_job, django_capture_on_commit_callbacks):
    Job.objects.filter(pk=waiting_job.pk).update(status=Status.PARSED)
    with django_capture_on_commit_callbacks() as wakeups:
        response = deliver(waiting_job)
    assert response.status_code == 200 and response.json()["result"] == "ignored"
    assert wakeups == [] and not Event.objects.filter(job=waiting_job, type="webhook_received").exists()


@pytest.mark.parametrize("address", ["wrong-token", "other-job"])
def test_a_wrong_token_or_an_unknown_job_is_one_and_the_same_404(member, waiting_job, pdf_bytes, address,
                                                                 django_capture_on_commit_callbacks):
    other = services.document_upload(owner=member, data=pdf_bytes + b"\n%other", filename="o.pdf").job
    events = Event.objects.count()
    with django_capture_on_commit_callbacks() as wakeups:
        if address == "wrong-token":  # another job's token does not open this job
            response = deliver(waiting_job, token=other.webhook_secret)
        else:
            response = APIClient().post(f"/api/v1/webhooks/llamaparse/{uuid.uuid4()}/{waiting_job.webhook_secret}/",
                                        {}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "WEBHOOK_UNKNOWN_JOB"
    assert wakeups == [] and Event.objects.count() == events


def test_the_body_is_never_read_whatever_it_holds(waiting_job, settings):
    # a body that is no JSON at all, and one over the server's request-body limit: still one wake-up
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    assert deliver(waiting_job, body=b"\x00not json").status_code == 202
    Event.objects.filter(job=waiting_job).delete()
    huge = b'{"md": "' + b"x" * 5000 + b'"}'
    assert deliver(waiting_job, body=huge).status_code == 202


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
    # then the parser was given this job's own callback address, called it twice, and one call counted
    job.refresh_from_db()
    fake_job = FakeParseJob.objects.get(pk=job.parse_job_id)
    assert fake_job.webhook_url.endswith(f"/api/v1/webhooks/llamaparse/{job.id}/{job.webhook_secret}/")
    assert _wait_for(lambda: FakeParseJob.objects.get(pk=job.parse_job_id).webhook_deliveries >= 2)
    assert Event.objects.filter(job=job, type="webhook_received").count() <= 1
    assert Event.objects.filter(job=job, type="stage_finished", stage="parse").count() == 1
    # and the member sees the result through the API
    detail = client.get(f"/api/v1/documents/{job.document_id}/").json()
    assert detail["status"] == "complete" and detail["progress"]["total_pct"] == 100 and detail["chunk_count"] > 0
    hits = client.post("/api/v1/search/", json={"query": "grace period premiums", "k": 3}).json()["results"]
    assert hits and all(hit["document_id"] == str(job.document_id) for hit in hits)
    # while another member's hybrid search over the same words finds nothing of it
    assert other.post("/api/v1/search/", json={"query": "grace period premiums", "k": 3}).json() == {"results": []}


def test_the_fake_calls_back_with_llamaparses_body(providers, member, pdf_bytes):
    # given a job submitted to the fake parser with a callback address
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    response = httpx.post(f"{providers.url}/fakes/llamaparse/api/v1/parsing/upload",
                          headers={"Authorization": "Bearer llx-local-fake-key"},
                          files={"file": ("p.pdf", pdf_bytes, "application/pdf")},
                          data={"webhook_url": f"{providers.url}/api/v1/webhooks/llamaparse/{job.id}/"
                                               f"{job.webhook_secret}/"})
    assert response.status_code == 200
    Job.objects.filter(pk=job.pk).update(status=Status.PARSE_QUEUED, parse_job_id=response.json()["id"])
    # then its callback reached the project and counted as the job's
    assert _wait_for(lambda: Event.objects.filter(job=job, type="webhook_received").exists())
    # and it carried LlamaParse's documented body: the result, without job id or signature
    import json
    body = json.loads(webhook_body(FakeParseJob.objects.get(pk=response.json()["id"])))
    assert set(body) == {"txt", "md", "json", "images"}
    assert body["json"][0]["page"] == 1 and body["json"][0]["md"] and "job_id" not in body


def test_a_job_is_finished_by_polling_when_no_callback_is_asked_for(providers, member, pdf_bytes, settings):
    settings.WEBHOOK_BASE_URL = ""  # callbacks off
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    assert run_job_sync(job.id) == Status.COMPLETE
    job.refresh_from_db()
    assert FakeParseJob.objects.get(pk=job.parse_job_id).webhook_url == ""
