"""Stage 4, embed: vectors for chunks that have none of the active model; text embedded before (for
any document) is copied, the rest sent to the provider in batches, written in bulk.

Idempotent: only chunks without a vector of the active model are sent; those already stored are kept.
Identical text is never paid for twice while a passage holding its vector is stored, and each vector
is written once (ChunkVector).
"""
from __future__ import annotations

import hashlib
import time

from django.db.models import Exists, F, OuterRef

from ingestion.chunking import ChunkDraft, estimate_tokens
from ingestion.errors import PipelineError, TransientError
from ingestion.models import Chunk, ChunkVector, Job
from ingestion.pipeline.bulk import store_vectors, vector_donors
from ingestion.providers.embeddings import active_space, embeddings_for_texts


def text_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def embedded_text(text: str, heading_path) -> str:
    """What is sent to the provider for a passage: its headings, then its text."""
    return ChunkDraft(0, text, 0, 0, heading_path or [], 0).embedding_input()


def embedded_text_sha(text: str, heading_path) -> str:
    """The key a passage's vector is stored and found under (ChunkVector.text_sha)."""
    return text_sha(embedded_text(text, heading_path))


def as_floats(vector) -> list[float]:
    """A stored vector (HalfVector, numpy array or list, by pgvector version) as a list of floats."""
    return [float(x) for x in (vector.to_list() if hasattr(vector, "to_list") else vector)]


def _without_vector(chunks, model: str, dimensions: int):
    """Those of ``chunks`` that hold no vector of this model and size."""
    return chunks.exclude(Exists(ChunkVector.objects.filter(chunk=OuterRef("pk"), model=model, dimensions=dimensions)))


def _keep_paid_batches(job: Job, ctx, error: PipelineError, *, model: str, dimensions: int, shas: dict,
                       donors: dict, missing: list[str]) -> None:
    """A batch failed after others came back: store the vectors already paid for (and the lent ones), so
    the attempt after this one sends only the rest."""
    partial = getattr(error, "partial", None)
    if partial is None:
        return
    ctx.provider_calls += partial.calls
    fresh = {sha: vector for sha, vector in zip(missing, partial.vectors) if vector is not None}
    if fresh:
        store_vectors(model=model, dimensions=dimensions, fresh=fresh,
                      chunk_shas={chunk_id: sha for chunk_id, sha in shas.items() if sha in fresh or sha in donors},
                      owner_id=job.document.owner_id, document_id=job.document_id, donors=donors)
    if partial.tokens:
        Job.objects.filter(pk=job.pk).update(tokens_embedded=F("tokens_embedded") + partial.tokens)
    if fresh and ctx.renew_lease(force=True):  # on the timeline of a job this worker still holds
        ctx.event("embed_partial", message=f"Passages embedded before a request failed ({error.code}) are kept; "
                  "the next attempt embeds only the rest.", payload={"kept": len(fresh), "tokens": partial.tokens})


def run(job: Job, ctx) -> dict:
    space = active_space()
    model, dimensions = space.model, space.dimensions
    pending = list(_without_vector(Chunk.objects.filter(document_id=job.document_id), model, dimensions)
                   .values_list("id", "text", "heading_path"))
    inputs = {chunk_id: embedded_text(text, heading_path) for chunk_id, text, heading_path in pending}
    shas = {chunk_id: text_sha(text) for chunk_id, text in inputs.items()}
    # text embedded before with this model, for any passage: copied, not paid for again
    donors = vector_donors(model=model, dimensions=dimensions, shas=shas.values())
    missing: dict[str, str] = {}
    for chunk_id, sha in shas.items():
        if sha not in donors and sha not in missing:
            missing[sha] = inputs[chunk_id]
    tokens, fresh = 0, {}
    if missing:
        texts = list(missing.values())
        try:
            result = embeddings_for_texts(texts, [estimate_tokens(t) for t in texts], space=space)
        except PipelineError as error:
            _keep_paid_batches(job, ctx, error, model=model, dimensions=dimensions, shas=shas, donors=donors,
                               missing=list(missing))
            raise
        ctx.provider_calls += result.calls
        tokens = result.tokens
        fresh = dict(zip(missing.keys(), result.vectors))
    started = time.monotonic()
    written = store_vectors(model=model, dimensions=dimensions, fresh=fresh, chunk_shas=shas,
                            owner_id=job.document.owner_id, document_id=job.document_id, donors=donors)
    store_seconds = time.monotonic() - started
    if written < len(pending):
        # Rows not written: another worker stored them meanwhile (fine), or the passage lending a vector was
        # deleted or re-embedded since it was found (those passages still need one).
        without = _without_vector(Chunk.objects.filter(id__in=[chunk_id for chunk_id, _, _ in pending]),
                                  model, dimensions).count()
        if without:
            Job.objects.filter(pk=job.pk).update(tokens_embedded=F("tokens_embedded") + tokens)  # paid either way
            raise TransientError("EMBED_INCOMPLETE", f"{without} of {len(pending)} passages got no vector (the "
                                 "passage they shared it with changed meanwhile); embedding runs again.")
    return {"tokens_embedded": job.tokens_embedded + tokens, "embed_model": model, "embed_dimensions": dimensions,
            "_payload": {"embedded": len(pending), "reused": len(pending) - len(missing), "tokens": tokens,
                         "store_seconds": round(store_seconds, 4)}}
