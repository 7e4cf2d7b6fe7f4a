"""Which embedding backend and model are in use, and vectors from it.

``EMBEDDING_BACKEND=openai`` (default) calls the OpenAI embeddings API (or the local fake of it);
``local`` runs all-MiniLM-L6-v2 on this machine. Every stored vector records the model and
dimensions it came from, so vectors of different models are never compared.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from ingestion.errors import PermanentError
from ingestion.providers import local_embeddings, openai_embeddings
from ingestion.providers.openai_embeddings import EmbeddingBatchResult

BACKENDS = ("openai", "local")


@dataclass(frozen=True)
class EmbeddingSpace:
    """A model and vector size: vectors are comparable only within one space."""

    backend: str
    model: str
    dimensions: int


def active_space() -> EmbeddingSpace:
    backend = settings.EMBEDDING_BACKEND
    if backend == "openai":
        return EmbeddingSpace("openai", settings.EMBEDDING_MODEL, settings.EMBEDDING_DIMENSIONS)
    if backend == "local":
        return EmbeddingSpace("local", local_embeddings.MODEL_NAME, local_embeddings.DIMENSIONS)
    raise PermanentError("EMBED_UNKNOWN_BACKEND", f"EMBEDDING_BACKEND is '{backend}'; set it to "
                         f"{' or '.join(BACKENDS)}.")


def embeddings_for_texts(texts: list[str], token_counts: list[int], *,
                         space: EmbeddingSpace | None = None) -> EmbeddingBatchResult:
    """Vectors for ``texts`` in order from the backend of ``space`` (default: the active one)."""
    space = space or active_space()
    if space.backend == "local":
        vectors = local_embeddings.embed_texts(texts)
        # Nothing is billed and no provider is called: tokens and calls count paid provider use.
        return EmbeddingBatchResult(vectors=vectors, tokens=0, calls=0)
    return openai_embeddings.embeddings_for_texts(texts, token_counts, model=space.model,
                                                  dimensions=space.dimensions)
