"""Member-scoped search over chunks: exact vector, PostgreSQL full-text, or both fused (RRF).

Scoping is in the SQL (owner_id = member), never filtered afterwards. Per-member data is small, so
exact cosine distance over the member's rows is exact and fast without an ANN index; only vectors
of the active embedding model are compared. Every hit is a citation: document, page span, heading
path, the passage, a highlighted snippet and the score each mode gave it.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchRank
from django.db import connection
from django.db.models import F
from pgvector import HalfVector
from pgvector.django import CosineDistance

from ingestion.chunking import estimate_tokens
from ingestion.errors import PermanentError
from ingestion.models import Chunk, EmbeddingCache
from ingestion.providers.embeddings import EmbeddingSpace, active_space, embeddings_for_texts
from ingestion.statuses import Status

MODES = ("hybrid", "vector", "text")
# Each ranking hands the fusion this many candidates per requested hit (at least MIN_CANDIDATES):
# a passage ranked low by one mode but high by the other still reaches the fused list.
CANDIDATES_PER_HIT = 4
MIN_CANDIDATES = 20
# ts_rank breaks ties between passages holding equally rare terms; no length normalisation (0)
# measured best on the labelled set (samples/eval), and the idf sum already favours specific terms.
TEXT_RANK_NORMALIZATION = 0
SNIPPET_OPTIONS = {"max_words": 35, "min_words": 15, "start_sel": "<mark>", "stop_sel": "</mark>",
                   "max_fragments": 2, "fragment_delimiter": " … "}


@dataclass
class SearchHit:
    chunk_id: str
    document_id: str
    filename: str
    page_start: int
    page_end: int
    heading_path: list[str]
    text: str
    snippet: str  # a short excerpt with the query's words wrapped in <mark></mark>
    score: float  # what the hits are ordered by: the fused score in hybrid mode, else the mode's own
    scores: dict = field(default_factory=dict)  # {"vector": cosine, "text": ts_rank, "fused": rrf}, modes that ranked it
    vector_score: float | None = None  # cosine similarity to the query, when the vector ranking had it
    text_score: float | None = None  # full-text rank, when the passage contains a query word
    fused_score: float | None = None  # reciprocal rank fusion (hybrid mode)
    vector_rank: int | None = None
    text_rank: int | None = None

    @property
    def citation(self) -> str:
        pages = f"p. {self.page_start}" if self.page_start == self.page_end else f"pp. {self.page_start}-{self.page_end}"
        return f"{self.filename}, {pages}"


def normalise_query(query: str) -> str:
    return re.sub(r"\s+", " ", query or "").strip()


def query_vector(query: str, space: EmbeddingSpace | None = None) -> list[float]:
    """The query's vector in ``space``: from the cache when this text was embedded with this model before."""
    space = space or active_space()
    sha = hashlib.sha256(query.encode()).hexdigest()
    cached = (EmbeddingCache.objects.filter(model=space.model, dimensions=space.dimensions, text_sha=sha)
              .values_list("embedding", flat=True).first())
    if cached is not None:
        return [float(x) for x in (cached.to_list() if hasattr(cached, "to_list") else cached)]
    vector = embeddings_for_texts([query], [estimate_tokens(query)], space=space).vectors[0]
    EmbeddingCache.objects.bulk_create([EmbeddingCache(model=space.model, dimensions=space.dimensions, text_sha=sha,
                                                       embedding=vector)], ignore_conflicts=True)
    return vector


class LexemeQuery(SearchQuery):
    """A tsquery written from lexemes PostgreSQL already normalised: cast as is, never parsed again."""

    def as_sql(self, compiler, connection, function=None, template=None):
        return super().as_sql(compiler, connection, template="%(expressions)s::tsquery")


def query_lexemes(query: str) -> list[str]:
    """The query's distinct search terms as the english configuration stems them (stop words dropped)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lexeme FROM unnest(to_tsvector('english', %s)) ORDER BY positions[1]", [query])
        return [row[0] for row in cursor.fetchall()]


def _tsquery_text(lexemes: list[str], operator: str) -> str:
    return f" {operator} ".join("'" + lexeme.replace("'", "''") + "'" for lexeme in lexemes)


def _scoped(owner, document_ids):
    chunks = Chunk.objects.filter(owner=owner, document__status=Status.COMPLETE)
    if document_ids:
        chunks = chunks.filter(document_id__in=document_ids)
    return chunks


def _vector_ranked(owner, query, document_ids, limit) -> list[tuple]:
    space = active_space()
    vector = query_vector(query, space)
    rows = (_scoped(owner, document_ids)
            .filter(embedding_model=space.model, embedding_dimensions=space.dimensions)
            .annotate(distance=CosineDistance("embedding", HalfVector(vector))).order_by("distance", "id")
            .values_list("id", "distance")[:limit])
    return [(chunk_id, 1.0 - float(distance)) for chunk_id, distance in rows]


def _text_ranked(owner, lexemes, document_ids, limit) -> list[tuple]:
    """Passages containing any query term, ranked by the rarity of the terms they contain (BM25's idf
    over the member's passages), then by ts_rank. OR, not AND: a natural question rarely shares every
    word with its answer; idf keeps "plan" or "pay", in nearly every passage, from outweighing "MRI"."""
    if not lexemes:
        return []
    terms = [_tsquery_text([lexeme], "|") for lexeme in lexemes]
    any_term = _tsquery_text(lexemes, "|")
    document_filter = "AND c.document_id = ANY(%(documents)s::uuid[])" if document_ids else ""
    sql = f"""
        WITH member AS MATERIALIZED (SELECT count(*) AS n FROM ingestion_chunk WHERE owner_id = %(owner)s),
        terms AS MATERIALIZED (
            SELECT t.q::tsquery AS q,
                   ln(1 + (member.n - df.n + 0.5) / (df.n + 0.5)) AS idf
              FROM unnest(%(terms)s::text[]) AS t(q)
             CROSS JOIN member
             CROSS JOIN LATERAL (SELECT count(*) AS n FROM ingestion_chunk AS x
                                  WHERE x.owner_id = %(owner)s AND x.search_vector @@ t.q::tsquery) AS df
        )
        SELECT c.id,
               (SELECT sum(terms.idf) FROM terms WHERE c.search_vector @@ terms.q)
                 + ts_rank(c.search_vector, %(any)s::tsquery, {TEXT_RANK_NORMALIZATION}) AS score
          FROM ingestion_chunk AS c
          JOIN ingestion_document AS d ON d.id = c.document_id
         WHERE c.owner_id = %(owner)s AND d.status = %(complete)s {document_filter}
           AND c.search_vector @@ %(any)s::tsquery
         ORDER BY score DESC, c.id
         LIMIT %(limit)s"""
    params = {"owner": owner.pk, "terms": terms, "any": any_term, "complete": Status.COMPLETE,
              "documents": [str(d) for d in document_ids or []], "limit": limit}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(chunk_id, float(score)) for chunk_id, score in cursor.fetchall()]


def search_chunks(*, owner, query: str, k: int = 5, document_ids=None, mode: str = "hybrid") -> list[SearchHit]:
    """The ``k`` best passages of the member's complete documents for ``query``, as citations.

    Reads only; the query's vector is cached (same text and model: no provider call).
    """
    if mode not in MODES:
        raise PermanentError("SEARCH_UNKNOWN_MODE", f"Unknown search mode '{mode}': use hybrid, vector or text.")
    query = normalise_query(query)
    if not query:
        raise PermanentError("SEARCH_EMPTY_QUERY", "Type a question or some words to search for.")
    pool = max(k * CANDIDATES_PER_HIT, MIN_CANDIDATES)
    lexemes = query_lexemes(query)
    ranked: dict[str, dict] = {}
    if mode in ("vector", "hybrid"):
        for rank, (chunk_id, score) in enumerate(_vector_ranked(owner, query, document_ids, pool), start=1):
            ranked.setdefault(chunk_id, {})["vector"] = (rank, score)
    if mode in ("text", "hybrid"):
        for rank, (chunk_id, score) in enumerate(_text_ranked(owner, lexemes, document_ids, pool), start=1):
            ranked.setdefault(chunk_id, {})["text"] = (rank, score)
    rrf_k = settings.SEARCH_RRF_K
    weights = {"vector": settings.SEARCH_VECTOR_WEIGHT, "text": settings.SEARCH_TEXT_WEIGHT}

    def fused(entry: dict) -> float:
        return sum(weights[name] / (rrf_k + rank) for name, (rank, _) in entry.items())

    def order_key(item):
        chunk_id, entry = item
        primary = fused(entry) if mode == "hybrid" else entry[mode][1]
        return (-primary, str(chunk_id))

    best = sorted(ranked.items(), key=order_key)[:k]
    rows = {c.id: c for c in Chunk.objects.filter(id__in=[chunk_id for chunk_id, _ in best])
            .select_related("document")
            .annotate(snippet=SearchHeadline("text", LexemeQuery(_tsquery_text(lexemes, "|")),
                                             config="english", **SNIPPET_OPTIONS))
            .defer("embedding", "search_vector")}
    hits = []
    for chunk_id, entry in best:
        chunk = rows[chunk_id]
        vector_rank, vector_score = entry.get("vector", (None, None))
        text_rank, text_score = entry.get("text", (None, None))
        fused_score = round(fused(entry), 6) if mode == "hybrid" else None
        scores = {name: round(score, 6) for name, (_, score) in entry.items()}
        if fused_score is not None:
            scores["fused"] = fused_score
        hits.append(SearchHit(
            chunk_id=str(chunk.id), document_id=str(chunk.document_id), filename=chunk.document.filename,
            page_start=chunk.page_start, page_end=chunk.page_end, heading_path=chunk.heading_path, text=chunk.text,
            snippet=chunk.snippet, score=fused_score if mode == "hybrid" else round(entry[mode][1], 6), scores=scores,
            vector_score=None if vector_score is None else round(vector_score, 6),
            text_score=None if text_score is None else round(text_score, 6), fused_score=fused_score,
            vector_rank=vector_rank, text_rank=text_rank))
    return hits
