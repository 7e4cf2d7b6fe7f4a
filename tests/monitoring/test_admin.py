"""The admin: list pages cost a fixed number of queries, actions go through the services."""
from __future__ import annotations

import pytest
from django.urls import reverse
from model_bakery import baker

from ingestion.models import Chunk, Document, Event, Job

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-for-tests")
    client.force_login(admin)
    return client


@pytest.fixture
def many_rows(make_job, django_user_model):
    """30 documents of 6 members, each with a job, 3 events and 2 chunks."""
    owners = [baker.make(django_user_model, username=f"member-{n}") for n in range(6)]
    jobs, events, chunks = [], [], []
    for index in range(30):
        job = make_job("failed_parse" if index % 3 else "complete", owner=owners[index % 6], filename=f"doc-{index}.pdf",
                       last_error_code="PARSE_NOT_A_PDF" if index % 3 else "", finished_ago=10, page_count=4,
                       chunk_count=2)
        events += [Event(job=job, document_id=job.document_id, type=type, stage="parse")
                   for type in ("job_created", "stage_started", "stage_finished")]
        chunks += [Chunk(id=Chunk.make_id(job.document_id, "v1", ordinal), document_id=job.document_id,
                         owner=job.document.owner, chunker_version="v1", ordinal=ordinal, text="passage",
                         chunk_sha="x", token_count=1, page_start=1, page_end=1) for ordinal in range(2)]
        jobs.append(job)
    Event.objects.bulk_create(events)
    Chunk.objects.bulk_create(chunks)
    return jobs


@pytest.mark.parametrize("model", ["document", "job", "chunk", "event"])
def test_changelist_queries_do_not_grow_with_rows(staff_client, many_rows, django_assert_max_num_queries, model):
    # given 30 documents, 30 jobs, 90 events and 60 chunks; then a page costs at most session + user +
    # counts + rows + filter choices: a query per row would add 30-90
    with django_assert_max_num_queries(12):
        response = staff_client.get(reverse(f"admin:ingestion_{model}_changelist"))
    assert response.status_code == 200
    changelist = response.context["cl"]
    assert changelist.result_count == len(changelist.result_list) == {"document": 30, "job": 30, "chunk": 60,
                                                                       "event": 90}[model]


def test_job_page_shows_the_event_timeline_inline(staff_client, make_job, make_event):
    job = make_job("failed_parse", last_error_code="PARSE_ENCRYPTED_PDF")
    make_event(job, "stage_started", stage="parse", ago=20)
    make_event(job, "stage_failed", stage="parse", ago=10, code="PARSE_ENCRYPTED_PDF")
    response = staff_client.get(reverse("admin:ingestion_job_change", args=[job.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Timeline" in body and "stage_failed" in body and body.index("stage_started") < body.index("stage_failed")


def test_changelists_filter_by_error_code_and_search_by_sha(staff_client, make_job):
    failed = make_job("failed_parse", last_error_code="PARSE_ENCRYPTED_PDF", filename="locked.pdf")
    make_job("complete", filename="fine.pdf")
    jobs = staff_client.get(reverse("admin:ingestion_job_changelist"), {"error_code": "PARSE_ENCRYPTED_PDF"})
    assert b"locked.pdf" in jobs.content and b"fine.pdf" not in jobs.content
    documents = staff_client.get(reverse("admin:ingestion_document_changelist"), {"q": failed.document.file_sha256})
    assert b"locked.pdf" in documents.content and b"fine.pdf" not in documents.content


def test_cancel_action_cancels_a_running_job_through_the_service(staff_client, make_job):
    job = make_job("chunking")
    response = staff_client.post(reverse("admin:ingestion_job_changelist"),
                                 {"action": "cancel", "_selected_action": [str(job.pk)]}, follow=True)
    job.refresh_from_db()
    assert job.status == "cancelled" and job.document.status == "cancelled"
    assert Event.objects.filter(job=job, type="job_cancelled").exists()
    assert b"Cancelled 1 item(s)" in response.content


def test_cancel_action_reports_the_code_when_the_job_already_ended(staff_client, make_job):
    job = make_job("complete")
    response = staff_client.post(reverse("admin:ingestion_job_changelist"),
                                 {"action": "cancel", "_selected_action": [str(job.pk)]}, follow=True)
    assert b"JOB_ALREADY_ENDED" in response.content
    job.refresh_from_db()
    assert job.status == "complete"


def test_retry_action_starts_a_new_job_for_a_failed_one(staff_client, make_job, django_capture_on_commit_callbacks):
    job = make_job("failed_parse", last_error_code="PARSE_PROVIDER_TIMEOUT",
                   stage_times={"parse": {"started": "2026-01-01T00:00:00+00:00"}})
    with django_capture_on_commit_callbacks(execute=False):
        staff_client.post(reverse("admin:ingestion_job_changelist"), {"action": "retry",
                                                                      "_selected_action": [str(job.pk)]})
    document = Document.objects.get(pk=job.document_id)
    assert Job.objects.filter(document=document).count() == 2
    assert document.current_job_id != job.pk and document.current_job.start_stage == "parse"
    assert document.status == "uploaded"


def test_reprocess_from_embed_starts_a_new_job_at_the_embed_stage(staff_client, make_job,
                                                                  django_capture_on_commit_callbacks):
    job = make_job("complete")
    Document.objects.filter(pk=job.document_id).update(parsed_path="parsed/x.json")
    with django_capture_on_commit_callbacks(execute=False):
        staff_client.post(reverse("admin:ingestion_document_changelist"),
                          {"action": "reprocess_from_embed", "_selected_action": [str(job.document_id)]})
    document = Document.objects.get(pk=job.document_id)
    assert document.current_job.start_stage == "embed" and document.status == "chunks_stored"


def test_reprocess_from_chunk_refuses_a_document_never_parsed(staff_client, make_job):
    job = make_job("failed_parse")
    response = staff_client.post(reverse("admin:ingestion_document_changelist"),
                                 {"action": "reprocess_from_chunk", "_selected_action": [str(job.document_id)]},
                                 follow=True)
    assert b"JOB_NOT_PARSED" in response.content
    assert Job.objects.filter(document_id=job.document_id).count() == 1


def test_a_member_without_staff_rights_cannot_open_the_admin(client, member):
    client.force_login(member)
    response = client.get(reverse("admin:ingestion_job_changelist"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_deleting_documents_in_the_admin_is_audited_like_the_api(staff_client, make_job,
                                                                django_capture_on_commit_callbacks):
    from ingestion.models import AuditRecord

    one, two = make_job("complete"), make_job("failed_parse")
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse("admin:ingestion_document_changelist"),
                          {"action": "delete_selected", "_selected_action": [str(one.document_id), str(two.document_id)],
                           "post": "yes"}, follow=True)
    assert not Document.objects.exists()
    records = AuditRecord.objects.filter(action="document_deleted")
    assert {r.document_id for r in records} == {one.document_id, two.document_id}
    assert all(r.actor_username == "ops" and r.detail["via"] == "admin" for r in records)


def test_reading_a_passage_in_the_admin_is_audited(staff_client, make_job):
    from ingestion.models import AuditRecord

    job = make_job("complete")
    chunk = baker.make(Chunk, document=job.document, owner=job.document.owner, ordinal=0, text="The copay is $20.",
                       page_start=1, page_end=1, heading_path=[])
    response = staff_client.get(reverse("admin:ingestion_chunk_change", args=[chunk.pk]))
    assert response.status_code == 200 and b"The copay is $20." in response.content
    record = AuditRecord.objects.get(action="chunks_read")
    assert record.document_id == job.document_id and record.detail == {"via": "admin", "chunk_ids": [str(chunk.pk)]}
