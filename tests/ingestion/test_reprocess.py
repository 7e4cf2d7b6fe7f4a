"""Reprocessing: a new job per document, older history kept, upstream results reused."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fakes.models import FakeParseJob
from ingestion import services
from ingestion.errors import PermanentError
from ingestion.models import Chunk, Document, Event, Job
from ingestion.pipeline.runner import run_job_sync, run_stage
from ingestion.statuses import Status
from tests.sessions import when_seen

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def complete_document(providers, member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    assert run_job_sync(job.id) == Status.COMPLETE
    return Document.objects.get(pk=job.document_id)


def test_reprocess_from_embed_reuses_the_parse_and_chunks(complete_document):
    # given
    first_job = complete_document.current_job
    chunk_ids = set(Chunk.objects.filter(document=complete_document).values_list("id", flat=True))
    out = StringIO()
    # when
    call_command("reprocess", "--document", str(complete_document.pk), "--from-stage", "embed", stdout=out)
    # then a second job exists, the first keeps its events, and no new parser job was submitted
    jobs = Job.objects.filter(document=complete_document).order_by("created_at")
    assert jobs.count() == 2 and jobs[0].pk == first_job.pk
    new_job = jobs[1]
    assert run_job_sync(new_job.id) == Status.COMPLETE
    new_job.refresh_from_db()
    assert new_job.start_stage == "embed" and new_job.parse_job_id == ""
    assert not Event.objects.filter(job=new_job, stage="parse").exists()
    assert Event.objects.filter(job=first_job, type="stage_finished").count() == 5
    assert set(Chunk.objects.filter(document=complete_document).values_list("id", flat=True)) == chunk_ids
    assert "1 job(s) started from embed" in out.getvalue()


def test_reprocess_failed_restarts_only_failed_documents(providers, member, complete_document):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 50, 50)  # a PDF with no text: the parser ends it failed_parse
    bad = services.document_upload(owner=member, data=bytes(pdf.output()), filename="scan.pdf").job
    assert run_job_sync(bad.id) == Status.FAILED_PARSE
    call_command("reprocess", "--failed", stdout=StringIO())
    assert Job.objects.filter(document_id=bad.document_id).count() == 2
    assert Job.objects.filter(document=complete_document).count() == 1
    assert Document.objects.get(pk=bad.document_id).status == Status.UPLOADED


def test_dry_run_lists_documents_and_starts_nothing(complete_document):
    out = StringIO()
    call_command("reprocess", "--status", "complete", "--from-stage", "chunk", "--dry-run", stdout=out)
    assert "policy.pdf" in out.getvalue() and "would be reprocessed from chunk" in out.getvalue()
    assert Job.objects.filter(document=complete_document).count() == 1


def test_reprocess_refuses_a_document_that_is_still_processing(member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    with pytest.raises(PermanentError) as error:
        services.job_start(document=job.document, from_stage="parse")
    assert error.value.code == "JOB_ACTIVE"
    err = StringIO()
    with pytest.raises(CommandError, match="No document could be reprocessed"):
        call_command("reprocess", "--document", str(job.document_id), stdout=StringIO(), stderr=err)
    assert "cancel it first" in err.getvalue()
    assert Job.objects.filter(document_id=job.document_id).count() == 1


def test_reprocess_exits_non_zero_when_some_documents_were_refused(complete_document, member, pdf_bytes):
    busy = services.document_upload(owner=member, data=pdf_bytes + b"\n%busy", filename="b.pdf").job
    out = StringIO()
    with pytest.raises(CommandError, match="1 document\\(s\\) could not be reprocessed"):
        call_command("reprocess", "--document", str(complete_document.pk), str(busy.document_id),
                     "--from-stage", "embed", stdout=out, stderr=StringIO())
    assert "1 job(s) started" in out.getvalue()


def test_unknown_document_ids_are_named(db):
    with pytest.raises(CommandError, match="No document with id 7d1f5a4e-0000-4000-8000-000000000000"):
        call_command("reprocess", "--document", "7d1f5a4e-0000-4000-8000-000000000000", stdout=StringIO())
    with pytest.raises(CommandError, match="Not a document id"):
        call_command("reprocess", "--document", "not-a-uuid", stdout=StringIO())


def test_reprocess_from_chunk_needs_a_parse(member, pdf_bytes):
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    services.job_cancel(job=document.current_job)
    with pytest.raises(PermanentError) as error:
        services.job_start(document=Document.objects.get(pk=document.pk), from_stage="chunk")
    assert error.value.code == "JOB_NOT_PARSED"
    with pytest.raises(PermanentError) as error:
        services.job_start(document=document, from_stage="index")
    assert error.value.code == "JOB_UNKNOWN_STAGE"


def test_a_cancelled_job_still_in_its_stage_holds_off_a_retry_until_the_step_ends(providers, member, pdf_bytes,
                                                                                  faults):
    # given a parse stage waiting on the parser
    faults("llamaparse", parse_seconds=1.0)
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    refused = []

    def cancel_then_retry():
        services.job_cancel(job=job)
        try:
            services.job_retry(job=job)
        except PermanentError as error:
            refused.append(error.code)

    # when the member cancels and at once retries while the stage is still at the parser
    other = when_seen(Event.objects.filter(job_id=job.pk, type="parse_submitted").exists, cancel_then_retry)
    outcome = run_stage(job.id, "parse")
    other.join()
    # then the retry was refused while the cancelled job's step ran; it ended without using its result
    assert refused == ["JOB_ACTIVE"] and outcome == Status.CANCELLED
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.lease_owner == ""
    # and once it has, a retry starts the one new job; the parser was paid once so far
    assert services.job_retry(job=job).status == Status.UPLOADED
    assert FakeParseJob.objects.count() == 1


def test_a_job_cancelled_while_it_waits_on_the_parser_is_not_parked_for_another_poll(providers, member, pdf_bytes,
                                                                                   faults, settings):
    # given a parse stage whose poll window ends before the parser does
    settings.PARSE_POLL_WINDOW_SECONDS = 0.6
    faults("llamaparse", parse_seconds=3)
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    # when the member cancels while it polls
    other = when_seen(Event.objects.filter(job_id=job.pk, type="parse_submitted").exists,
                      lambda: services.job_cancel(job=job))
    outcome = run_stage(job.id, "parse")
    other.join()
    # then the stage lets the job go: no retry time, no "still working" on the cancelled job's timeline
    assert outcome == Status.CANCELLED
    job.refresh_from_db()
    assert job.lease_owner == "" and job.next_attempt_at is None
    assert not Event.objects.filter(job=job, type="parse_waiting").exists()


def test_a_new_parse_that_moves_text_to_other_pages_moves_the_citations(complete_document):
    from ingestion import storage

    # given a complete document, whose pages come back from a new parse with a blank page in front
    before = {c.chunk_sha: (c.page_start, c.page_end) for c in Chunk.objects.filter(document=complete_document)}
    pages = storage.parsed_pages_read(complete_document.parsed_path)
    Document.objects.filter(pk=complete_document.pk).update(
        parsed_path=storage.parsed_pages_save(document_id=complete_document.pk, pages=[""] + pages))
    # when its passages are made again
    job = services.job_start(document=Document.objects.get(pk=complete_document.pk), from_stage="chunk")
    assert run_job_sync(job.id) == Status.COMPLETE
    # then the same texts now cite the page they are on, one further
    after = {c.chunk_sha: (c.page_start, c.page_end) for c in Chunk.objects.filter(document=complete_document)}
    assert set(after) == set(before)
    assert all(after[sha] == (start + 1, end + 1) for sha, (start, end) in before.items())
    # and their vectors were carried over, not paid for again (same section, same text)
    finished = Event.objects.get(job=job, type="stage_finished", stage="embed")
    assert finished.payload["embedded"] == 0
