"""Member-scoped search over chunks: exact vector, PostgreSQL full-text, or both fused (RRF).

Scoping is in the SQL (owner_id = member), never filtered afterwards. Per-member data is small, so
exact cosine distance over the member's rows is exact and fast without an ANN index.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db.models import F
from pgvector import HalfVector
from pgvector.django import CosineDistance

from ingestion.errors import PermanentError
from ingestion.models import Chunk
from ingestion.providers.openai_embeddings import embeddings_for_texts
from ingestion.chunking import estimate_tokens
from ingestion.statuses import Status

MODES = ("hybrid", "vector", "text")


@dataclass
class SearchHit:
    chunk_id: str
    document_id: str
    filename: str
    page_start: int
    page_end: int
    heading_path: list[str]
    text: str
    snippet: str
    score: float
    scores: dict = field(default_factory=dict)


def query_vector(query: str) -> list[float]:
    from ingestion.models import EmbeddingCache
    from ingestion.pipeline.embed import as_floats, text_sha

    model, dimensions = settings.EMBEDDING_MODEL, settings.EMBEDDING_DIMENSIONS
    sha = text_sha(query)
    cached = EmbeddingCache.objects.filter(model=model, dimensions=dimensions, text_sha=sha).first()
    if cached is not None:
        return as_floats(cached.embedding)
    vector = embeddings_for_texts([query], [estimate_tokens(query)], model=model, dimensions=dimensions).vectors[0]
    EmbeddingCache.objects.bulk_create([EmbeddingCache(model=model, dimensions=dimensions, text_sha=sha,
                                                       embedding=vector)], ignore_conflicts=True)
    return vector


def _scoped(owner, document_ids):
    chunks = Chunk.objects.filter(owner=owner, document__status=Status.COMPLETE)
    if document_ids:
        chunks = chunks.filter(document_id__in=document_ids)
    return chunks


def _vector_ranked(owner, query, document_ids, limit):
    vector = query_vector(query)
    rows = (_scoped(owner, document_ids).exclude(embedding__isnull=True)
            .annotate(distance=CosineDistance("embedding", HalfVector(vector))).order_by("distance")
            .values_list("id", "distance")[:limit])
    return [(chunk_id, 1.0 - float(distance)) for chunk_id, distance in rows]


def _text_ranked(owner, query, document_ids, limit):
    search_query = SearchQuery(query, config="english", search_type="websearch")
    plain = SearchQuery(" OR ".join(query.split()), config="english", search_type="websearch")
    rows = (_scoped(owner, document_ids).filter(search_vector=plain)
            .annotate(rank=SearchRank(F("search_vector"), plain) + SearchRank(F("search_vector"), search_query))
            .order_by("-rank").values_list("id", "rank")[:limit])
    return [(chunk_id, float(rank)) for chunk_id, rank in rows]


def search_chunks(*, owner, query: str, k: int = 5, document_ids=None, mode: str = "hybrid") -> list[SearchHit]:
    """The ``k`` best chunks of the member's complete documents for ``query``, with citations."""
    if mode not in MODES:
        raise PermanentError("SEARCH_UNKNOWN_MODE", f"Unknown search mode '{mode}': use hybrid, vector or text.")
    query = (query or "").strip()
    if not query:
        raise PermanentError("SEARCH_EMPTY_QUERY", "Type a question or some words to search for.")
    pool = max(k * 4, 20)
    scores: dict = {}
    if mode in ("vector", "hybrid"):
        for rank, (chunk_id, score) in enumerate(_vector_ranked(owner, query, document_ids, pool), start=1):
            scores.setdefault(chunk_id, {})["vector"] = (rank, score)
    if mode in ("text", "hybrid"):
        for rank, (chunk_id, score) in enumerate(_text_ranked(owner, query, document_ids, pool), start=1):
            scores.setdefault(chunk_id, {})["text"] = (rank, score)
    rrf_k = settings.SEARCH_RRF_K
    weights = {"vector": settings.SEARCH_VECTOR_WEIGHT, "text": settings.SEARCH_TEXT_WEIGHT}

    def fused(entry: dict) -> float:
        if mode != "hybrid":
            return entry[mode][1]
        return sum(weights[name] / (rrf_k + rank) for name, (rank, _) in entry.items())

    ranked = sorted(scores.items(), key=lambda item: fused(item[1]), reverse=True)[:k]
    ids = [chunk_id for chunk_id, _ in ranked]
    search_query = SearchQuery(" OR ".join(query.split()), config="english", search_type="websearch")
    rows = {c.id: c for c in Chunk.objects.filter(id__in=ids).select_related("document")
            .annotate(snippet=SearchHeadline("text", search_query, config="english", max_words=35, min_words=15))
            .defer("embedding", "search_vector")}
    hits = []
    for chunk_id, entry in ranked:
        c = rows[chunk_id]
        hits.append(SearchHit(chunk_id=str(c.id), document_id=str(c.document_id), filename=c.document.filename,
                              page_start=c.page_start, page_end=c.page_end, heading_path=c.heading_path,
                              text=c.text, snippet=c.snippet, score=round(fused(entry), 6),
                              scores={name: round(score, 6) for name, (_, score) in entry.items()}))
    return hits


