"""The stages through the fakes over real HTTP, against the real database."""
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.utils import timezone
from model_bakery import baker

from fakes.models import FakeRequest
from ingestion import services, storage
from ingestion.chunking import CHUNKER_VERSION, chunk_markdown
from ingestion.models import Chunk, Document, Event, Job
from ingestion.pipeline.bulk import insert_chunks, store_vectors
from ingestion.pipeline.embed import embedded_text_sha
from ingestion.pipeline.runner import run_job_sync, run_stage
from ingestion.providers.embeddings import active_space
from ingestion.providers.pdf_text import pdf_to_markdown_pages
from ingestion.statuses import Status
from samples.generate import build_full_document
from tests.sessions import when_seen

pytestmark = pytest.mark.django_db(transaction=True)


def _expected_chunks(data: bytes, settings) -> int:
    return len(chunk_markdown(pdf_to_markdown_pages(data), max_tokens=settings.CHUNK_MAX_TOKENS,
                              overlap_tokens=settings.CHUNK_OVERLAP_TOKENS))


def test_document_completes_through_llamaparse_and_openai_fakes(providers, member, pdf_bytes, settings):
    # given
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    # when
    status = run_job_sync(job.id)
    # then
    job.refresh_from_db()
    assert status == Status.COMPLETE and job.document.status == Status.COMPLETE
    assert job.parse_job_id
    chunks = Chunk.objects.filter(document=job.document)
    assert chunks.count() == _expected_chunks(pdf_bytes, settings) == job.chunk_count
    assert not chunks.filter(vector__isnull=True).exists() and not chunks.filter(search__isnull=True).exists()
    assert {c.page_start for c in chunks} == {1, 2, 3}
    assert job.tokens_embedded > 0 and job.cost_estimate_usd > 0
    types = list(Event.objects.filter(job=job).values_list("type", flat=True))
    assert types.count("stage_finished") == 5


def test_local_parser_backend_gives_the_same_chunks(providers, member, pdf_bytes, settings):
    settings.PARSER_BACKEND = "local"
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    assert run_job_sync(job.id) == Status.COMPLETE
    job.refresh_from_db()
    assert job.parse_job_id == ""
    assert Chunk.objects.filter(document=job.document).count() == _expected_chunks(pdf_bytes, settings)


def test_running_a_stage_twice_changes_nothing(providers, member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    run_job_sync(job.id)
    before = list(Chunk.objects.filter(document=job.document).values_list("id", "chunk_sha"))
    # a late duplicate message for every stage is acknowledged and dropped
    for stage in ("parse", "validate", "chunk", "embed", "finalize"):
        assert run_stage(job.id, stage) == "not_due_for_stage"
    assert list(Chunk.objects.filter(document=job.document).values_list("id", "chunk_sha")) == before


def test_rechunking_an_already_chunked_document_adds_no_duplicates(providers, member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    run_job_sync(job.id)
    count = Chunk.objects.filter(document=job.document).count()
    again = services.job_start(document=Document.objects.get(pk=job.document_id), from_stage="chunk")
    assert run_job_sync(again.id) == Status.COMPLETE
    assert Chunk.objects.filter(document=job.document).count() == count
    again.refresh_from_db()
    assert again.tokens_embedded == 0  # every vector was already there


def test_identical_text_is_embedded_once(providers, member, other_member, pdf_bytes):
    first = services.document_upload(owner=member, data=pdf_bytes, filename="a.pdf").job
    run_job_sync(first.id)
    second = services.document_upload(owner=other_member, data=pdf_bytes, filename="a.pdf").job
    run_job_sync(second.id)
    second.refresh_from_db()
    assert second.status == Status.COMPLETE and second.tokens_embedded == 0
    assert Event.objects.filter(job=second, type="stage_finished", stage="embed",
                                payload__reused=second.chunk_count).exists()


@pytest.mark.parametrize("data, code", [
    (b"This is a test PDF content for upload testing.", "PARSE_NOT_A_PDF"),
    (b"", "PARSE_EMPTY_FILE"),
])
def test_bad_file_that_reaches_the_pipeline_ends_failed_parse(providers, member, data, code):
    # given a file stored without the upload checks (e.g. by an older client)
    path = storage.raw_file_save(owner_id=member.pk, data=data)
    document = Document.objects.create(owner=member, filename="bad.pdf", size=len(data), file_sha256="x" * 64,
                                       storage_path=path)
    job = services.job_start(document=document)
    # when
    status = run_job_sync(job.id)
    # then
    job.refresh_from_db()
    assert status == Status.FAILED_PARSE and job.last_error_code == code
    assert job.last_error_retryable is False and job.lease_owner == ""
    assert default_storage.exists(path)  # nothing is lost


def test_pdf_without_text_fails_with_the_parser_error_mapped(providers, member):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 50, 50)
    job = services.document_upload(owner=member, data=bytes(pdf.output()), filename="scan.pdf").job
    assert run_job_sync(job.id) == Status.FAILED_PARSE
    job.refresh_from_db()
    assert job.last_error_code == "PARSE_NO_TEXT"


def test_transient_provider_errors_are_retried_then_fail_the_stage(providers, member, pdf_bytes, faults, settings):
    # given an embedding provider that always fails with 5xx
    settings.OPENAI_SDK_MAX_RETRIES = 0
    settings.JOB_MAX_ATTEMPTS = 3
    faults("openai", error_rate=1.0)
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    # when
    status = run_job_sync(job.id)
    # then
    job.refresh_from_db()
    assert status == Status.FAILED_EMBEDDING
    assert job.last_error_code == "EMBED_PROVIDER_ERROR" and job.attempts == 3
    assert Event.objects.filter(job=job, type="retry_scheduled").count() == 2


def test_duplicate_parsed_content_ends_duplicate(providers, member, pdf_bytes):
    first = services.document_upload(owner=member, data=pdf_bytes, filename="a.pdf").job
    run_job_sync(first.id)
    # same content, different bytes (a re-saved copy)
    second = services.document_upload(owner=member, data=pdf_bytes + b"\n%resaved\n", filename="b.pdf").job
    assert run_job_sync(second.id) == Status.DUPLICATE
    assert Event.objects.filter(job=second, type="duplicate_content",
                                payload__original_document_id=str(first.document_id)).exists()


def test_a_passage_whose_lent_vector_vanishes_meanwhile_is_embedded_on_the_next_attempt(
        providers, member, other_member, faults, settings):
    # given a document of several passages, chunked
    settings.PARSER_BACKEND = "local"
    job = services.document_upload(owner=member, data=build_full_document(2, seed=31), filename="eoc.pdf").job
    for stage in ("parse", "validate", "chunk"):
        run_stage(job.id, stage)
    first = Chunk.objects.filter(document_id=job.document_id).order_by("ordinal").first()
    # and another member's document that already holds a vector for the first passage's text
    space = active_space()
    lender = baker.make("ingestion.Document", owner=other_member)
    lent = Chunk(id=Chunk.make_id(lender.id, CHUNKER_VERSION, 0), document_id=lender.id, owner_id=other_member.id,
                 chunker_version=CHUNKER_VERSION, ordinal=0, text=first.text, chunk_sha=first.chunk_sha,
                 token_count=first.token_count, page_start=1, page_end=1, heading_path=first.heading_path)
    insert_chunks([lent])
    sha = embedded_text_sha(first.text, first.heading_path)
    store_vectors(model=space.model, dimensions=space.dimensions, chunk_shas={lent.id: sha},
                  fresh={sha: np.random.default_rng(0).random(space.dimensions, dtype=np.float32)},
                  owner_id=other_member.id, document_id=lender.id)
    # and a provider slow enough for that document to be deleted while it embeds the other passages
    faults("openai", latency_ms=1500)

    deleter = when_seen(FakeRequest.objects.filter(service="openai", status__isnull=True).exists,  # in flight
                        Document.objects.filter(pk=lender.pk).delete)
    # when the embed stage runs: the first passage was found lent, the others went to the provider
    outcome = run_stage(job.id, "embed")
    deleter.join(30)
    # then it did not pass on a passage without a vector: it says why and runs again, keeping what it paid for
    job.refresh_from_db()
    assert outcome == "retry_scheduled" and job.last_error_code == "EMBED_INCOMPLETE" and job.last_error_retryable
    assert not Document.objects.filter(pk=lender.pk).exists()
    assert job.tokens_embedded > 0
    without = Chunk.objects.filter(document_id=job.document_id, vector__isnull=True)
    assert list(without.values_list("id", flat=True)) == [first.id]
    # and the next attempt embeds that passage itself
    faults("openai", latency_ms=0)
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())  # its retry time has come
    assert run_stage(job.id, "embed") == Status.EMBEDDINGS_STORED
    assert not without.exists()


def test_a_document_deleted_while_it_is_parsed_leaves_no_file(providers, member, pdf_bytes, faults, settings, tmp_path):
    # given a parse that takes a moment at the parser
    settings.MEDIA_ROOT = tmp_path / "files"
    faults("llamaparse", parse_seconds=1.0)
    document = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").document
    job = document.current_job
    # when the member deletes the document once it has been sent to the parser
    deleter = when_seen(Event.objects.filter(job_id=job.pk, type="parse_submitted").exists,
                        lambda: services.document_delete(document=Document.objects.get(pk=document.pk)))
    outcome = run_stage(job.id, "parse")
    deleter.join()
    # then the stage ends quietly, and neither the upload nor the parsed pages are left in storage
    assert outcome == "missing"
    assert not Document.objects.filter(pk=document.pk).exists()
    root = tmp_path / "files"
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_a_deletion_that_is_rolled_back_keeps_the_files(member, pdf_bytes, settings, tmp_path):
    from django.db import transaction

    settings.MEDIA_ROOT = tmp_path / "files"
    document = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").document
    document_id, path = document.pk, document.storage_path
    with pytest.raises(RuntimeError), transaction.atomic():
        services.document_delete(document=document)
        raise RuntimeError("the request failed after the delete")
    assert Document.objects.filter(pk=document_id).exists()
    assert default_storage.exists(path)


def test_finalize_sends_a_job_with_passages_lacking_vectors_back_to_embed(providers, member, settings):
    # given a job whose embed stage ran, then a passage lost its vector (as if written after embed looked)
    settings.PARSER_BACKEND = "local"
    job = services.document_upload(owner=member, data=build_full_document(2, seed=5), filename="p.pdf").job
    for stage in ("parse", "validate", "chunk", "embed"):
        run_stage(job.id, stage)
    lacking = Chunk.objects.filter(document_id=job.document_id).order_by("ordinal").first()
    lacking.vector.delete()
    # when finalize runs
    assert run_stage(job.id, "finalize") == Status.EMBEDDING_QUEUED
    job.refresh_from_db()
    assert job.progress["stage"] == "embed" and job.progress["total_pct"] < 100
    # then the job went back to embed, which gave that one passage its vector, and then completed
    assert Event.objects.filter(job=job, type="embed_again", payload__missing=1).exists()
    assert run_job_sync(job.id) == Status.COMPLETE
    assert not Chunk.objects.filter(document_id=job.document_id, vector__isnull=True).exists()
    embedded = Event.objects.filter(job=job, type="stage_finished", stage="embed").order_by("created_at").last()
    assert embedded.payload["embedded"] == 1


def test_batches_paid_for_before_one_failed_are_kept_and_not_paid_again(providers, member, faults, settings):
    # given a document of ~20 passages sent 4 texts a request, one request at a time, no quick retries
    settings.PARSER_BACKEND = "local"
    settings.EMBEDDING_BATCH_INPUTS, settings.EMBEDDING_CONCURRENCY = 4, 1
    settings.OPENAI_SDK_MAX_RETRIES = 0
    job = services.document_upload(owner=member, data=build_full_document(16, seed=8), filename="p.pdf").job
    for stage in ("parse", "validate", "chunk"):
        run_stage(job.id, stage)
    passages = Chunk.objects.filter(document_id=job.document_id)
    total = passages.count()
    requests = -(-total // 4)
    assert requests >= 8
    # when the provider starts failing once two requests have been answered
    answered = FakeRequest.objects.filter(service="openai", method="POST", outcome="ok", status=200)
    breaker = when_seen(lambda: answered.count() >= 2, lambda: faults("openai", error_rate=1.0), every=0.001)
    faults("openai", latency_ms=150)
    assert run_stage(job.id, "embed") == "retry_scheduled"
    breaker.join()
    # then what came back before the failure is stored and billed, and later batches were never sent
    kept = passages.filter(vector__isnull=False).count()
    assert 8 <= kept < total and kept % 4 == 0
    job.refresh_from_db()
    assert job.tokens_embedded > 0
    assert Event.objects.filter(job=job, type="embed_partial", payload__kept=kept).exists()
    sent = FakeRequest.objects.filter(service="openai", method="POST").count()
    # the answered ones, the one that failed, and at most the one the worker thread had started meanwhile
    assert kept // 4 + 1 <= sent <= kept // 4 + 2 < requests
    # and the next attempt pays only for the rest
    faults("openai")
    Job.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert run_stage(job.id, "embed") == Status.EMBEDDINGS_STORED
    finished = Event.objects.get(job=job, type="stage_finished", stage="embed")
    assert finished.payload["embedded"] == total - kept
