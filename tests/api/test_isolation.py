"""Isolation matrix: member B tries every endpoint on member A's objects and learns nothing.

Every answer is the same 404 a made-up id gets, nothing of A's changes, and B's searches, lists
and counts never include A's rows.
"""
from __future__ import annotations

import uuid

import pytest

from ingestion import services
from ingestion.models import AuditRecord, Chunk, Document, Event, Job
from tests.api.conftest import CHUNK_TEXTS, make_complete

# (method, path template, body): {doc} is A's document id, {job} A's job id.
ENDPOINTS = [
    ("get", "/api/v1/documents/{doc}/", None),
    ("delete", "/api/v1/documents/{doc}/", None),
    ("get", "/api/v1/documents/{doc}/events/", None),
    ("get", "/api/v1/documents/{doc}/chunks/", None),
    ("get", "/api/v1/documents/{doc}/file/", None),
    ("post", "/api/v1/documents/{doc}/reprocess/", {"from_stage": "chunk"}),
    ("get", "/api/v1/jobs/{job}/", None),
    ("post", "/api/v1/jobs/{job}/retry/", None),
    ("post", "/api/v1/jobs/{job}/cancel/", None),
    ("post", "/api/v1/search/", {"query": "deductible", "mode": "text", "document_ids": ["{doc}"]}),
]


def _snapshot():
    return (list(Document.objects.values_list("id", "status", "current_job_id")),
            list(Job.objects.values_list("id", "status")), Chunk.objects.count(), Event.objects.count())


@pytest.fixture
def a_objects(member, pdf_bytes):
    """Member A's complete document, its job and three chunks."""
    document = services.document_upload(owner=member, data=pdf_bytes, filename="a-secret-plan.pdf").document
    make_complete(document, CHUNK_TEXTS)
    return document


@pytest.mark.parametrize("method, template, body", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_member_b_gets_404_on_member_a_objects_and_nothing_changes(api_b, a_objects, method, template, body):
    # given
    ids = {"doc": str(a_objects.id), "job": str(a_objects.current_job_id)}
    before = _snapshot()
    # when
    response = _call(api_b, method, template.format(**ids), body, ids)
    unknown = _call(api_b, method, template.format(doc=uuid.uuid4(), job=uuid.uuid4()), body,
                    {"doc": str(uuid.uuid4()), "job": str(uuid.uuid4())})
    # then: the same answer as for an id that does not exist, with none of A's data
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert response.json() == unknown.json()
    text = response.content.decode()
    assert "a-secret-plan" not in text and "deductible" not in text.lower()
    assert _snapshot() == before
    assert not AuditRecord.objects.exists()


def test_member_b_searches_lists_and_counts_never_include_member_a(api_b, a_objects, other_member, pdf_bytes):
    # given B has a document of their own
    b_document = services.document_upload(owner=other_member, data=pdf_bytes, filename="b-plan.pdf").document
    make_complete(b_document, ["Vision care covers one eye exam a year."])
    # when B searches for words only A's chunks contain
    response = api_b.post("/api/v1/search/", {"query": "deductible emergency authorization", "mode": "text", "k": 50},
                          format="json")
    listing = api_b.get("/api/v1/documents/").json()
    filtered = api_b.get("/api/v1/documents/?status=complete").json()
    # then
    assert response.status_code == 200 and response.json()["results"] == []
    assert listing["count"] == 1 and [d["id"] for d in listing["results"]] == [str(b_document.id)]
    assert filtered["count"] == 1
    assert not AuditRecord.objects.filter(document_id=a_objects.id).exists()


def test_member_b_uploading_a_copy_of_a_file_gets_a_document_of_their_own(api_b, a_objects, pdf_bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api_b.post("/api/v1/documents/", {"file": SimpleUploadedFile("copy.pdf", pdf_bytes)},
                          format="multipart")
    assert response.status_code == 201 and response.json()["duplicate"] is False
    assert response.json()["document"]["id"] != str(a_objects.id)


def _call(client, method, path, body, ids):
    if body is None:
        return getattr(client, method)(path)
    body = {key: ([item.format(**ids) for item in value] if isinstance(value, list) else value)
            for key, value in body.items()}
    return getattr(client, method)(path, body, format="json")


@pytest.mark.parametrize("accept", ["application/pdf", "application/json", "*/*"])
def test_a_refused_download_is_a_json_error_whatever_the_client_accepts(api_b, a_objects, accept):
    response = api_b.get(f"/api/v1/documents/{a_objects.id}/file/", HTTP_ACCEPT=accept)
    assert response.status_code == 404 and response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "NOT_FOUND"


def _keys(value) -> set[str]:
    """Every key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | set().union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


def test_a_member_cannot_tell_that_another_member_uploaded_the_same_text(providers, member, other_member,
                                                                        pdf_bytes):
    from ingestion.pipeline.runner import run_job_sync
    from ingestion.statuses import Status
    from tests.api.conftest import client_for

    # given member A's document processed, then member B uploading the same file
    first = services.document_upload(owner=member, data=pdf_bytes, filename="plan.pdf").job
    assert run_job_sync(first.id) == Status.COMPLETE
    second = services.document_upload(owner=other_member, data=pdf_bytes, filename="plan.pdf").job
    assert run_job_sync(second.id) == Status.COMPLETE
    # the pipeline reused A's vectors: B's document cost nothing to embed
    second.refresh_from_db()
    assert second.tokens_embedded == 0 and first.__class__.objects.get(pk=first.pk).tokens_embedded > 0
    # but nothing B can read says so, and what B reads has the shape A's has
    views = {}
    for name, user, job in (("a", member, first), ("b", other_member, second)):
        api = client_for(user)
        views[name] = [api.get(f"/api/v1/documents/{job.document_id}/").json(),
                       api.get(f"/api/v1/jobs/{job.id}/").json(),
                       api.get(f"/api/v1/documents/{job.document_id}/events/").json()]
    hidden = {"reused", "tokens", "provider_calls", "tokens_embedded", "cost_estimate_usd"}
    assert not hidden & _keys(views["b"]) and _keys(views["a"]) == _keys(views["b"])
