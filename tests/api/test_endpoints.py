"""Every endpoint's success path, through DRF's test client against the real database."""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from ingestion import services
from ingestion.models import AuditRecord, Chunk, Document, Event, Job
from ingestion.statuses import Status
from samples.generate import build_document
from tests.api.conftest import CHUNK_TEXTS, make_complete


def test_token_endpoint_gives_a_token_that_authenticates(member):
    # given
    member.set_password("correct horse battery")
    member.save()
    client = APIClient()
    # when
    response = client.post("/api/v1/auth/token/", {"username": "member-a", "password": "correct horse battery"},
                           format="json")
    # then
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/v1/documents/").status_code == 200


def test_token_endpoint_refuses_a_wrong_password(member):
    member.set_password("correct horse battery")
    member.save()
    response = APIClient().post("/api/v1/auth/token/", {"username": "member-a", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "AUTH_INVALID_CREDENTIALS"


def test_session_login_authenticates_the_api(member):
    client = APIClient()
    client.force_login(member)
    assert client.get("/api/v1/documents/").status_code == 200


def test_upload_answers_201_with_document_job_and_status_url(api, pdf_bytes, stored_files):
    # when
    response = api.post("/api/v1/documents/", {"file": _file(pdf_bytes, "policy.pdf")}, format="multipart")
    # then
    assert response.status_code == 201, response.json()
    body = response.json()
    document = Document.objects.get()
    assert body["duplicate"] is False
    assert body["document"]["id"] == str(document.id) and body["document"]["page_count"] == 3
    assert body["job"]["id"] == str(document.current_job_id) and body["job"]["status"] == "uploaded"
    assert body["status_url"] == f"http://testserver/api/v1/documents/{document.id}/"
    assert stored_files() == [document.storage_path]


def test_same_bytes_again_answer_200_with_the_existing_document(api, pdf_bytes):
    first = api.post("/api/v1/documents/", {"file": _file(pdf_bytes, "a.pdf")}, format="multipart").json()
    response = api.post("/api/v1/documents/", {"file": _file(pdf_bytes, "b.pdf")}, format="multipart")
    assert response.status_code == 200
    assert response.json()["duplicate"] is True
    assert response.json()["document"]["id"] == first["document"]["id"]
    assert Document.objects.count() == 1 and Job.objects.count() == 1


def test_list_filters_by_status_and_created_date_orders_and_paginates(api, member, pdf_bytes):
    # given three documents, one complete, one created long ago
    documents = [services.document_upload(owner=member, data=build_document(1, seed=i), filename=f"d{i}.pdf").document
                 for i in range(3)]
    make_complete(documents[0], ["text"])
    Document.objects.filter(pk=documents[2].pk).update(created_at=timezone.now() - timedelta(days=30))
    # then
    assert _ids(api.get("/api/v1/documents/?status=complete")) == [str(documents[0].id)]
    week_ago = (timezone.now() - timedelta(days=7)).isoformat()
    assert set(_ids(api.get("/api/v1/documents/", {"created_before": week_ago}))) == {str(documents[2].id)}
    assert len(_ids(api.get("/api/v1/documents/", {"created_after": week_ago}))) == 2
    by_name = _ids(api.get("/api/v1/documents/?ordering=-filename"))
    assert by_name == [str(d.id) for d in sorted(documents, key=lambda d: d.filename, reverse=True)]
    page = api.get("/api/v1/documents/?limit=2&offset=0").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]


def test_list_refuses_a_date_with_an_impossible_time_zone(api):
    response = api.get("/api/v1/documents/", {"created_after": "0249-10-23T20:10:36-21:32"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["field"] == "created_after"


def test_list_refuses_an_unknown_status_filter(api):
    response = api.get("/api/v1/documents/?status=shredded")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR" and response.json()["error"]["field"] == "status"


def test_detail_shows_progress_pages_chunks_last_error_and_current_job(api, complete_document):
    Job.objects.filter(pk=complete_document.current_job_id).update(
        last_error_code="EMBED_RATE_LIMITED", last_error_message="Slow down.", last_error_retryable=True,
        cost_estimate_usd="0.012345")
    body = api.get(f"/api/v1/documents/{complete_document.id}/").json()
    assert body["status"] == "complete"
    assert body["progress"] == {"stage": "finalize", "stage_pct": 100, "total_pct": 100}
    assert body["page_count"] == 3 and body["chunk_count"] == 3
    assert body["last_error"] == {"code": "EMBED_RATE_LIMITED", "message": "Slow down.", "retryable": True}
    assert body["current_job"]["id"] == str(complete_document.current_job_id)
    # what the platform paid is the operators' business (admin, dashboard), not the member's
    assert not {"cost_estimate_usd", "tokens_embedded", "provider_calls"} & set(body["current_job"])


def test_delete_removes_document_jobs_chunks_events_files_and_is_audited(api, complete_document, stored_files,
                                                                         django_capture_on_commit_callbacks):
    assert stored_files()
    with django_capture_on_commit_callbacks(execute=True):  # files go once the deletion commits
        response = api.delete(f"/api/v1/documents/{complete_document.id}/", HTTP_USER_AGENT="member-app/2.1")
    assert response.status_code == 204
    assert not Document.objects.exists() and not Job.objects.exists()
    assert not Chunk.objects.exists() and not Event.objects.exists()
    assert stored_files() == []
    record = AuditRecord.objects.get()
    assert record.action == "document_deleted" and record.document_id == complete_document.id
    assert record.actor_username == "member-a" and record.ip_address == "127.0.0.1"
    assert record.user_agent == "member-app/2.1"


def test_events_are_the_timeline_oldest_first(api, member, pdf_bytes):
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    job = document.current_job
    services.event_record(job=job, type="stage_started", stage="parse")
    services.event_record(job=job, type="stage_retry", stage="parse", code="PARSE_PROVIDER_TIMEOUT")
    body = api.get(f"/api/v1/documents/{document.id}/events/").json()
    assert [e["type"] for e in body["results"]] == ["job_created", "stage_started", "stage_retry"]
    assert body["results"][2]["code"] == "PARSE_PROVIDER_TIMEOUT" and body["results"][2]["created_at"]


def test_chunks_come_with_page_span_and_heading_path_without_vectors_and_are_audited(api, complete_document):
    body = api.get(f"/api/v1/documents/{complete_document.id}/chunks/").json()
    assert [c["text"] for c in body["results"]] == CHUNK_TEXTS
    first = body["results"][0]
    assert first["page_start"] == 1 and first["heading_path"] == ["Section 1", "Part 0"]
    assert "embedding" not in first
    record = AuditRecord.objects.get()
    assert record.action == "chunks_read" and len(record.detail["chunk_ids"]) == 3


def test_file_download_returns_the_uploaded_bytes_and_is_audited(api, complete_document, pdf_bytes):
    response = api.get(f"/api/v1/documents/{complete_document.id}/file/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content) == pdf_bytes
    assert 'filename="a-policy.pdf"' in response["Content-Disposition"]
    assert AuditRecord.objects.get().action == "file_downloaded"


def test_reprocess_starts_a_new_job_from_the_stage(api, complete_document):
    response = api.post(f"/api/v1/documents/{complete_document.id}/reprocess/", {"from_stage": "chunk"}, format="json")
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.start_stage == "chunk" and job.status == Status.PARSE_VALIDATED
    assert Document.objects.get().current_job_id == job.id and Job.objects.count() == 2


def test_reprocess_is_refused_while_a_job_runs(api, member, pdf_bytes):
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    response = api.post(f"/api/v1/documents/{document.id}/reprocess/", {"from_stage": "parse"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "JOB_ACTIVE"
    assert Job.objects.count() == 1


def test_job_detail(api, complete_document):
    body = api.get(f"/api/v1/jobs/{complete_document.current_job_id}/").json()
    assert body["status"] == "complete" and body["document"] == str(complete_document.id)


def test_cancel_then_retry_starts_a_new_job(api, member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    cancelled = api.post(f"/api/v1/jobs/{job.id}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{job.id}/cancel/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "JOB_ALREADY_ENDED"
    retried = api.post(f"/api/v1/jobs/{job.id}/retry/")
    assert retried.status_code == 201 and retried.json()["id"] != str(job.id)
    assert retried.json()["start_stage"] == "parse"


def test_retry_of_a_job_that_did_not_fail_is_refused(api, complete_document):
    response = api.post(f"/api/v1/jobs/{complete_document.current_job_id}/retry/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "JOB_NOT_FAILED"


def test_retry_of_a_job_the_document_has_moved_past_is_refused(api, member, pdf_bytes):
    failed = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    services.job_cancel(job=failed)
    newer = services.job_retry(job=failed)  # a new job now runs for the document
    response = api.post(f"/api/v1/jobs/{failed.id}/retry/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "JOB_SUPERSEDED"
    assert str(newer.id) in response.json()["error"]["message"]
    assert Job.objects.count() == 2


def test_text_search_returns_cited_chunks_and_audits_the_hits(api, complete_document):
    response = api.post("/api/v1/search/", {"query": "emergency room copay", "k": 2, "mode": "text"}, format="json")
    assert response.status_code == 200, response.json()
    hits = response.json()["results"]
    assert hits[0]["text"] == CHUNK_TEXTS[1] and hits[0]["page_start"] == 2
    assert hits[0]["document_id"] == str(complete_document.id) and hits[0]["heading_path"]
    record = AuditRecord.objects.get()
    assert record.action == "search_hits_read" and hits[0]["chunk_id"] in record.detail["chunk_ids"]


def test_search_within_named_documents_only(api, member, complete_document):
    other = services.document_upload(owner=member, data=build_document(1, seed=9), filename="other.pdf").document
    make_complete(other, ["The emergency room copay is waived if you are admitted."])
    response = api.post("/api/v1/search/", {"query": "emergency copay", "mode": "text",
                                            "document_ids": [str(other.id)]}, format="json")
    assert {hit["document_id"] for hit in response.json()["results"]} == {str(other.id)}


def _file(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/pdf")


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [d["id"] for d in response.json()["results"]]

