"""Bulk writes: straight COPY when the rows are new, the idempotent path when some already exist."""
import threading

import numpy as np
import pytest
from django.db import connection, transaction
from model_bakery import baker

from ingestion import services
from ingestion.models import Chunk, ChunkVector, Document, EmbeddingCache, Event
from ingestion.pipeline import chunk as chunk_stage
from ingestion.pipeline.bulk import insert_chunks, store_vectors, vector_donors
from ingestion.chunking import CHUNKER_VERSION
from ingestion.pipeline.embed import as_floats, embedded_text_sha, text_sha
from ingestion.providers.embeddings import active_space
from ingestion.pipeline.runner import run_stage
from ingestion.statuses import Status
from tests.sessions import when_seen


def _rows(document, texts):
    return [Chunk(id=Chunk.make_id(document.id, "t", i), document_id=document.id, owner_id=document.owner_id,
                  chunker_version="t", ordinal=i, text=text, chunk_sha=f"sha-{text}", token_count=2,
                  page_start=1, page_end=1, heading_path=["Part", text]) for i, text in enumerate(texts)]


def _shas(document):
    return dict(Chunk.objects.filter(document=document).values_list("id", "chunk_sha"))


@pytest.mark.django_db
def test_chunks_already_stored_are_skipped_and_new_ones_added(member):
    document = baker.make("ingestion.Document", owner=member)
    assert insert_chunks(_rows(document, ["a", "b"])) == 2
    # when the same rows come again with one more (a stage run twice), then only the new one is added
    assert insert_chunks(_rows(document, ["a", "b", "c"])) == 1
    stored = Chunk.objects.filter(document=document).order_by("ordinal")
    assert [(c.text, c.heading_path) for c in stored] == [("a", ["Part", "a"]), ("b", ["Part", "b"]), ("c", ["Part", "c"])]


@pytest.mark.django_db
def test_a_vector_is_stored_once_and_lent_to_the_same_text_of_another_document(member, other_member):
    first = baker.make("ingestion.Document", owner=member)
    insert_chunks(_rows(first, ["a", "b"]))
    assert store_vectors(model="m", dimensions=3, fresh={"sha-a": np.float32([0, 1, 0]), "sha-b": [0, 0, 1]},
                         chunk_shas=_shas(first), owner_id=member.id, document_id=first.id) == 2
    # when another member's document holds the same text "a" (and a new "c")
    second = baker.make("ingestion.Document", owner=other_member)
    insert_chunks(_rows(second, ["a", "c"]))
    donors = vector_donors(model="m", dimensions=3, shas=["sha-a", "sha-c"])
    assert set(donors) == {"sha-a"}
    assert store_vectors(model="m", dimensions=3, fresh={"sha-c": [1, 1, 0]}, chunk_shas=_shas(second),
                         owner_id=other_member.id, document_id=second.id, donors=donors) == 2
    # then "a" got the first document's vector, in a row of the second member's own
    mine = {v.chunk.text: (v.owner_id, v.text_sha, as_floats(v.embedding))
            for v in ChunkVector.objects.filter(document=second)}
    assert mine == {"a": (other_member.id, "sha-a", [0, 1, 0]), "c": (other_member.id, "sha-c", [1, 1, 0])}
    # and no second copy of any vector was written anywhere else
    assert ChunkVector.objects.count() == 4 and not EmbeddingCache.objects.exists()
    # when the first document is deleted, then its vectors go with it; the second keeps its own copy
    services.document_delete(document=first)
    assert not ChunkVector.objects.filter(text_sha="sha-b").exists()
    assert ChunkVector.objects.filter(document=second).count() == 2


@pytest.mark.django_db
def test_vectors_of_another_model_are_replaced_and_stored_ones_are_joined(member):
    document = baker.make("ingestion.Document", owner=member)
    insert_chunks(_rows(document, ["a", "b"]))
    chunk_a = Chunk.objects.get(document=document, text="a")
    ChunkVector.objects.create(chunk=chunk_a, owner=member, document=document, model="old", dimensions=2,
                               text_sha="sha-a", embedding=[1, 1])
    elsewhere = baker.make("ingestion.Document", owner=member)
    insert_chunks(_rows(elsewhere, ["b"]))
    store_vectors(model="m", dimensions=3, fresh={"sha-b": [0, 0, 1]}, chunk_shas=_shas(elsewhere),
                  owner_id=member.id, document_id=elsewhere.id)
    # when "a" is embedded fresh with the new model and "b" is found stored for the other document
    assert store_vectors(model="m", dimensions=3, fresh={"sha-a": [1, 0, 0]}, chunk_shas=_shas(document),
                         owner_id=member.id, document_id=document.id,
                         donors=vector_donors(model="m", dimensions=3, shas=["sha-b"])) == 2
    vectors = {v.chunk.text: (v.model, as_floats(v.embedding)) for v in ChunkVector.objects.filter(document=document)}
    assert vectors == {"a": ("m", [1, 0, 0]), "b": ("m", [0, 0, 1])}
    assert ChunkVector.objects.filter(chunk=chunk_a).count() == 1  # replaced in place, not duplicated


@pytest.mark.django_db(transaction=True)
def test_chunk_stage_finishes_when_another_worker_writes_the_same_passages_meanwhile(member, pdf_bytes, settings):
    settings.PARSER_BACKEND = "local"
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    for stage in ("parse", "validate"):
        run_stage(job.id, stage)
    document = Document.objects.get(pk=job.document_id)
    # given a worker that held the job before ours has written the same passages, not committed yet
    written, blocked = threading.Event(), threading.Event()

    def other_worker():
        try:
            with transaction.atomic():
                chunk_stage._store(document, chunk_stage.passages(document), straight=False)
                written.set()
                blocked.wait(20)  # until our stage's COPY waits on these rows
        finally:
            connection.close()

    def a_session_waits_on_a_lock() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            return bool(cursor.fetchone()[0])

    other = threading.Thread(target=other_worker)
    other.start()
    assert written.wait(20)
    watcher = when_seen(a_session_waits_on_a_lock, blocked.set, every=0.05)
    # when our chunk stage runs: it sees no passages, COPYs straight, waits on theirs, and they commit
    outcome = run_stage(job.id, "chunk")
    other.join(20)
    watcher.join(20)
    # then our COPY did meet their rows, and the stage still finished with every passage once, indexed
    assert blocked.is_set()
    assert outcome == Status.EMBEDDING_QUEUED
    stored = Chunk.objects.filter(document=document)
    assert stored.count() == len(chunk_stage.passages(document)) and not stored.filter(search__isnull=True).exists()
    assert Event.objects.filter(job_id=job.id, type="stage_finished", stage="chunk").count() == 1


@pytest.mark.django_db
def test_a_lent_vector_is_checked_again_when_copied(member, other_member):
    first = baker.make("ingestion.Document", owner=member)
    insert_chunks(_rows(first, ["a"]))
    store_vectors(model="m", dimensions=3, fresh={"sha-a": [0, 1, 0]}, chunk_shas=_shas(first), owner_id=member.id,
                  document_id=first.id)
    second = baker.make("ingestion.Document", owner=other_member)
    insert_chunks(_rows(second, ["a"]))
    donors = vector_donors(model="m", dimensions=3, shas=["sha-a"])
    # when the lending passage is re-embedded with another model between the lookup and the copy
    ChunkVector.objects.filter(document=first).update(model="other", dimensions=2, embedding=[1, 1])
    # then nothing of the other model is copied under this one's name; the borrower is left without a vector
    assert store_vectors(model="m", dimensions=3, fresh={}, chunk_shas=_shas(second), owner_id=other_member.id,
                         document_id=second.id, donors=donors) == 0
    assert not ChunkVector.objects.filter(document=second).exists()


@pytest.mark.django_db
def test_a_rechunk_that_shifts_passages_keeps_their_vectors(member, settings):
    settings.EMBEDDING_BACKEND = "openai"
    space = active_space()
    document = baker.make("ingestion.Document", owner=member)

    def passages(texts):
        return [Chunk(id=Chunk.make_id(document.id, CHUNKER_VERSION, i), document_id=document.id,
                      owner_id=member.id, chunker_version=CHUNKER_VERSION, ordinal=i, text=text,
                      chunk_sha=text_sha(text), token_count=2, page_start=1, page_end=1, heading_path=["H"])
                for i, text in enumerate(texts)]

    before = passages(["deductible applies", "copay is 20 dollars"])
    chunk_stage._store(document, before, straight=True)
    vectors = {embedded_text_sha(row.text, row.heading_path): np.random.default_rng(i).random(space.dimensions)
               for i, row in enumerate(before)}
    store_vectors(model=space.model, dimensions=space.dimensions, fresh=vectors,
                  chunk_shas={row.id: embedded_text_sha(row.text, row.heading_path) for row in before},
                  owner_id=member.id, document_id=document.id)
    # when a reprocess adds a passage in front, so both old texts move to new ordinals (new ids)
    chunk_stage._store(document, passages(["a new first page", "deductible applies", "copay is 20 dollars"]),
                       straight=True)
    # then the two moved passages kept their vectors (nothing to pay for), and only the new one has none
    stored = {c.text: c for c in Chunk.objects.filter(document=document)}
    assert len(stored) == 3
    moved = ChunkVector.objects.filter(chunk__in=[stored["deductible applies"], stored["copay is 20 dollars"]])
    assert moved.count() == 2 and all(v.model == space.model for v in moved)
    assert not ChunkVector.objects.filter(chunk=stored["a new first page"]).exists()
