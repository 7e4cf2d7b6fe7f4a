"""Bulk writes: straight COPY when the rows are new, the idempotent path when some already exist."""
import uuid

import pytest
from model_bakery import baker

from ingestion.models import Chunk, ChunkVector, EmbeddingCache
from ingestion.pipeline.bulk import insert_chunks, store_vectors
from ingestion.pipeline.embed import as_floats


def _rows(document, texts):
    return [Chunk(id=Chunk.make_id(document.id, "t", i), document_id=document.id, owner_id=document.owner_id,
                  chunker_version="t", ordinal=i, text=text, chunk_sha=f"sha-{text}", token_count=2,
                  page_start=1, page_end=1, heading_path=["Part", text]) for i, text in enumerate(texts)]


@pytest.mark.django_db
def test_chunks_already_stored_are_skipped_and_new_ones_added(member):
    document = baker.make("ingestion.Document", owner=member)
    assert insert_chunks(_rows(document, ["a", "b"])) == 2
    # when the same rows come again with one more (a stage run twice), then only the new one is added
    assert insert_chunks(_rows(document, ["a", "b", "c"])) == 1
    stored = Chunk.objects.filter(document=document).order_by("ordinal")
    assert [(c.text, c.heading_path) for c in stored] == [("a", ["Part", "a"]), ("b", ["Part", "b"]), ("c", ["Part", "c"])]


@pytest.mark.django_db
def test_fresh_vectors_reach_cache_and_chunks_even_when_another_document_cached_the_text_first(member):
    document = baker.make("ingestion.Document", owner=member)
    chunks = insert_chunks(_rows(document, ["a", "b"])) and list(Chunk.objects.filter(document=document))
    shas = {chunk.id: chunk.chunk_sha for chunk in chunks}
    # given another document cached "a" a moment ago (with its own vector)
    EmbeddingCache.objects.create(model="m", dimensions=3, text_sha="sha-a", embedding=[1, 0, 0])
    # when this document stores its fresh vectors for both texts
    set_count = store_vectors(model="m", dimensions=3, fresh={"sha-a": [0, 1, 0], "sha-b": [0, 0, 1]},
                              chunk_shas=shas, owner_id=member.id, document_id=document.id)
    # then the cache keeps the first vector of "a", gains "b", and every chunk has a vector
    assert set_count == 2
    assert as_floats(EmbeddingCache.objects.get(text_sha="sha-a").embedding) == [1, 0, 0]
    assert EmbeddingCache.objects.filter(text_sha="sha-b", model="m").exists()
    assert ChunkVector.objects.filter(chunk__document=document, model="m", dimensions=3).count() == 2


@pytest.mark.django_db
def test_vectors_of_another_model_are_replaced_and_cached_ones_are_joined(member):
    document = baker.make("ingestion.Document", owner=member)
    insert_chunks(_rows(document, ["a", "b"]))
    shas = dict(Chunk.objects.filter(document=document).values_list("id", "chunk_sha"))
    chunk_a = Chunk.objects.get(document=document, text="a")
    ChunkVector.objects.create(chunk=chunk_a, owner=member, document=document, model="old", dimensions=2,
                               embedding=[1, 1])
    EmbeddingCache.objects.create(model="m", dimensions=3, text_sha="sha-b", embedding=[0, 0, 1])
    # when "a" is embedded fresh with the new model and "b" comes from the cache
    store_vectors(model="m", dimensions=3, fresh={"sha-a": [1, 0, 0]}, chunk_shas=shas, owner_id=member.id,
                  document_id=document.id)
    vectors = {v.chunk.text: (v.model, as_floats(v.embedding)) for v in ChunkVector.objects.filter(document=document)}
    assert vectors == {"a": ("m", [1, 0, 0]), "b": ("m", [0, 0, 1])}
    assert uuid.UUID(str(chunk_a.id))  # the row kept its id: replaced in place, not duplicated
