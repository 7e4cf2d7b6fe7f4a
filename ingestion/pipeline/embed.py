"""Stage 4, embed: vectors for chunks that have none, cache first, provider batches, written in bulk.

Idempotent: only chunks without a vector are sent; vectors already stored are kept.
"""
from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import connection, transaction

from ingestion.chunking import ChunkDraft, estimate_tokens
from ingestion.models import Chunk, EmbeddingCache, Job
from ingestion.providers.openai_embeddings import embeddings_for_texts


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def as_floats(vector) -> list[float]:
    """A stored vector (HalfVector, numpy array or list, by pgvector version) as a list of floats."""
    return [float(x) for x in (vector.to_list() if hasattr(vector, "to_list") else vector)]


def _vector_literal(vector) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


def write_vectors(pairs: list[tuple[str, list[float]]]) -> None:
    """Set chunk embeddings in one statement per 500 rows (no per-chunk queries)."""
    with connection.cursor() as cursor:
        for start in range(0, len(pairs), 500):
            part = pairs[start:start + 500]
            values = ",".join(["(%s::uuid, %s::halfvec)"] * len(part))
            params = [p for chunk_id, vector in part for p in (str(chunk_id), _vector_literal(vector))]
            cursor.execute(f"UPDATE ingestion_chunk AS c SET embedding = v.e FROM (VALUES {values}) AS v(id, e) "
                           "WHERE c.id = v.id AND c.embedding IS NULL", params)


def run(job: Job, ctx) -> dict:
    model, dimensions = settings.EMBEDDING_MODEL, settings.EMBEDDING_DIMENSIONS
    pending = list(Chunk.objects.filter(document_id=job.document_id, embedding__isnull=True)
                   .values_list("id", "text", "heading_path"))
    inputs = {chunk_id: ChunkDraft(0, text, 0, 0, heading_path or [], 0).embedding_input()
              for chunk_id, text, heading_path in pending}
    shas = {chunk_id: text_sha(text) for chunk_id, text in inputs.items()}
    cached = {sha: as_floats(vector) for sha, vector in
              EmbeddingCache.objects.filter(model=model, dimensions=dimensions, text_sha__in=set(shas.values()))
              .values_list("text_sha", "embedding")}
    missing_shas: dict[str, str] = {}
    for chunk_id, sha in shas.items():
        if sha not in cached and sha not in missing_shas:
            missing_shas[sha] = inputs[chunk_id]
    tokens = 0
    if missing_shas:
        texts = list(missing_shas.values())
        result = embeddings_for_texts(texts, [estimate_tokens(t) for t in texts], model=model, dimensions=dimensions)
        ctx.provider_calls += result.calls
        tokens = result.tokens
        fresh = dict(zip(missing_shas.keys(), result.vectors))
        EmbeddingCache.objects.bulk_create(
            [EmbeddingCache(model=model, dimensions=dimensions, text_sha=sha, embedding=vector)
             for sha, vector in fresh.items()], batch_size=500, ignore_conflicts=True)
        cached.update(fresh)
    with transaction.atomic():
        write_vectors([(chunk_id, cached[sha]) for chunk_id, sha in shas.items()])
    return {"tokens_embedded": job.tokens_embedded + tokens, "embed_model": model, "embed_dimensions": dimensions,
            "_payload": {"embedded": len(pending), "from_cache": len(pending) - len(missing_shas), "tokens": tokens}}
