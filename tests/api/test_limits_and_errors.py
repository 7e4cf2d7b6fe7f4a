"""Throttles and the per-member job cap (429 + Retry-After + when to retry), and one error shape everywhere."""
from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from ingestion import services
from ingestion.models import Document
from samples.generate import build_document


def _upload(client, data: bytes):
    return client.post("/api/v1/documents/", {"file": SimpleUploadedFile("p.pdf", data)}, format="multipart")


def test_uploads_per_day_are_capped_with_retry_after(api, api_settings):
    # given
    api_settings.API_UPLOADS_PER_DAY = 2
    api_settings.API_MAX_ACTIVE_JOBS = 10
    # when
    statuses = [_upload(api, build_document(1, seed=i)).status_code for i in range(3)]
    refused = _upload(api, build_document(1, seed=99))
    # then
    assert statuses == [201, 201, 429]
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "UPLOAD_RATE_LIMITED" and "limit of 2 uploads in 24 hours" in error["message"]
    assert "Try again in" in error["message"]
    assert 3600 < int(refused["Retry-After"]) <= 86400
    assert Document.objects.count() == 2


def test_status_polls_per_minute_are_capped(api, api_settings, member, pdf_bytes):
    api_settings.API_STATUS_POLLS_PER_MINUTE = 3
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    statuses = [api.get(f"/api/v1/documents/{document.id}/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.get(f"/api/v1/jobs/{document.current_job_id}/")
    assert refused.json()["error"]["code"] == "POLL_RATE_LIMITED"
    assert 0 < int(refused["Retry-After"]) <= 60


def test_poll_limit_is_per_member(api, api_b, api_settings):
    api_settings.API_STATUS_POLLS_PER_MINUTE = 1
    assert api.get("/api/v1/documents/").status_code == 200
    assert api_b.get("/api/v1/documents/").status_code == 200
    assert api.get("/api/v1/documents/").status_code == 429


def test_active_jobs_cap_refuses_new_work_and_says_when_to_retry(api, api_settings, member, pdf_bytes):
    # given a member at the cap of one running job, and a finished document
    api_settings.API_MAX_ACTIVE_JOBS = 1
    api_settings.API_ACTIVE_JOBS_RETRY_SECONDS = 45
    finished = services.document_upload(owner=member, data=build_document(1, seed=5), filename="f.pdf").document
    services.job_cancel(job=finished.current_job)
    assert _upload(api, pdf_bytes).status_code == 201
    # when it starts more work
    upload = _upload(api, build_document(2, seed=3))
    reprocess = api.post(f"/api/v1/documents/{finished.id}/reprocess/", {"from_stage": "parse"}, format="json")
    retry = api.post(f"/api/v1/jobs/{finished.current_job_id}/retry/")
    # then each is refused with the wait
    for response in (upload, reprocess, retry):
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "ACTIVE_JOBS_LIMIT"
        assert "1 documents processing (the limit is 1)" in response.json()["error"]["message"]
        assert "Try again in 45 seconds" in response.json()["error"]["message"]
        assert response["Retry-After"] == "45"
    assert Document.objects.count() == 2


def test_token_requests_per_address_are_capped(db, api_settings):
    api_settings.API_AUTH_ATTEMPTS_PER_MINUTE = 2
    client = APIClient()
    statuses = [client.post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json").status_code
                for _ in range(3)]
    assert statuses == [400, 400, 429]


def test_a_made_up_forwarded_address_does_not_buy_more_token_requests(db, api_settings):
    api_settings.API_AUTH_ATTEMPTS_PER_MINUTE = 2  # no trusted proxy: the header is the client's own words
    client = APIClient()
    statuses = [client.post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json",
                            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(3)]
    assert statuses == [400, 400, 429]


def test_behind_a_trusted_proxy_each_client_address_has_its_own_allowance(db, api_settings):
    api_settings.API_AUTH_ATTEMPTS_PER_MINUTE = 1
    api_settings.API_TRUSTED_PROXY_COUNT = 1  # the proxy appends the address it saw, after the client's words
    client = APIClient()

    def attempt(seen_by_proxy: str) -> int:
        return client.post("/api/v1/auth/token/", {"username": "x", "password": "y"}, format="json",
                           HTTP_X_FORWARDED_FOR=f"203.0.113.9, {seen_by_proxy}").status_code

    assert [attempt("198.51.100.1"), attempt("198.51.100.2"), attempt("198.51.100.1")] == [400, 400, 429]


@pytest.mark.parametrize("request_args, status, code", [
    (("get", "/api/v1/documents/", {}), 401, "AUTH_REQUIRED"),
    (("get", "/api/v1/documents/", {"HTTP_AUTHORIZATION": "Token not-a-real-token"}), 401, "AUTH_FAILED"),
    (("get", "/api/v1/no-such-endpoint/", {}), 404, "NOT_FOUND"),
    (("get", "/api/v1/documents/not-a-uuid/", {}), 404, "NOT_FOUND"),
    (("get", f"/api/v1/documents/{uuid.uuid4()}/", {"auth": True}), 404, "NOT_FOUND"),
    (("put", "/api/v1/documents/", {"auth": True}), 405, "METHOD_NOT_ALLOWED"),
    (("patch", f"/api/v1/jobs/{uuid.uuid4()}/", {"auth": True}), 405, "METHOD_NOT_ALLOWED"),
    (("get", "/api/v1/search/", {"auth": True}), 405, "METHOD_NOT_ALLOWED"),
    (("post", "/api/v1/search/", {"auth": True, "content_type": "text/plain", "data": "copay"}), 415,
     "UNSUPPORTED_MEDIA_TYPE"),
])
def test_every_error_has_the_one_shape(member, request_args, status, code):
    method, path, extra = request_args
    client = APIClient()
    if extra.pop("auth", False):
        client.force_authenticate(member)
    response = getattr(client, method)(path, **extra)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


def test_address_without_its_trailing_slash_says_so(api):
    response = api.get("/api/v1/documents")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Every API address ends with a slash: use /api/v1/documents/"


def test_unauthenticated_answers_401_with_a_token_challenge(db):
    response = APIClient().get("/api/v1/documents/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"
    assert "Authorization: Token" in response.json()["error"]["message"]


def test_a_search_while_the_embeddings_account_is_out_of_credit_is_503_not_the_members_fault(
        providers, api, faults, settings):
    settings.OPENAI_SDK_MAX_RETRIES = 0
    faults("openai", quota_exhausted=1)
    response = api.post("/api/v1/search/", {"query": "ambulance copay", "mode": "hybrid"}, format="json")
    assert response.status_code == 503 and response["Retry-After"] == "300"
    error = response.json()["error"]
    assert error["code"] == "EMBED_QUOTA_EXCEEDED" and "mode 'text'" in error["message"]
    assert "Add credit" not in error["message"]  # the operators' instruction is for the operators
    text = api.post("/api/v1/search/", {"query": "ambulance copay", "mode": "text"}, format="json")
    assert text.status_code == 200
