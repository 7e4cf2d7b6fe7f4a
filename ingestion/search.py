"""Member-scoped search over chunks: exact vector, PostgreSQL full-text, or both fused (RRF).

Scoping is in the SQL (owner_id = member), never filtered afterwards. Per-member data is small, so
exact cosine distance over the member's vectors (a narrow table of their own) is exact and fast without
an ANN index; only vectors
of the active embedding model are compared. Every hit is a citation: document, page span, heading
path, the passage, a highlighted snippet and the score each mode gave it.
"""
from __future__ import annotations

import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connection

from ingestion.chunking import estimate_tokens
from ingestion.errors import PermanentError
from ingestion.glossary import policy_terms
from ingestion.pipeline.embed import as_floats, text_sha
from ingestion.models import SEARCH_VECTOR_SQL, Chunk, ChunkSearch, ChunkVector, EmbeddingCache
from ingestion.providers.embeddings import EmbeddingSpace, active_space, embeddings_for_texts
from ingestion.statuses import Status

MODES = ("hybrid", "vector", "text")
# Each ranking hands the fusion this many candidates per requested hit (at least MIN_CANDIDATES):
# a passage ranked low by one mode but high by the other still reaches the fused list.
CANDIDATES_PER_HIT = 4
MIN_CANDIDATES = 20
# BM25's usual constants: k1 is irrelevant with presence-only term frequency except through the
# length term; b = 0.75 favours a passage that says it in fewer words.
BM25_K1, BM25_B = 1.2, 0.75
SNIPPET_HEADLINE_OPTIONS = {"MaxWords": 35, "MinWords": 15, "StartSel": "<mark>", "StopSel": "</mark>",
                            "MaxFragments": 2, "FragmentDelimiter": '" … "'}


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
    scores: dict = field(default_factory=dict)  # {"vector": cosine, "text": bm25, "fused": ...}, modes that ranked it
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


def query_vector_cached(query: str, space: EmbeddingSpace) -> str:
    """Make sure the query's vector is in the cache (one provider call the first time); returns its key.

    Searches then read the vector inside the ranking statement, so it never travels to Python and back.
    """
    sha = text_sha(query)
    with connection.cursor() as cursor:  # plain SQL: searches are hot, and the ORM's compile costs more than this
        cursor.execute(f"SELECT 1 FROM {EmbeddingCache._meta.db_table} WHERE model = %s AND dimensions = %s "
                       "AND text_sha = %s", [space.model, space.dimensions, sha])
        cached = cursor.fetchone() is not None
    if not cached:
        vector = embeddings_for_texts([query], [estimate_tokens(query)], space=space).vectors[0]
        EmbeddingCache.objects.bulk_create([EmbeddingCache(model=space.model, dimensions=space.dimensions,
                                                           text_sha=sha, embedding=vector)], ignore_conflicts=True)
    return sha


def query_vector(query: str, space: EmbeddingSpace | None = None) -> list[float]:
    """The query's vector in ``space``: from the cache when this text was embedded with this model before."""
    space = space or active_space()
    sha = query_vector_cached(query, space)
    return as_floats(EmbeddingCache.objects.get(model=space.model, dimensions=space.dimensions, text_sha=sha).embedding)


def _lexeme_tsquery(lexeme: str) -> str:
    """One lexeme as tsquery text: quoted, so it is taken as is (no parsing, no stemming again)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class Term:
    tsquery: str  # one lexeme ('deduct') or a phrase ('emerg' <-> 'room')
    weight: float  # 1 for the member's own words, SEARCH_EXPANSION_WEIGHT for glossary terms


def query_terms(query: str, *, expand: bool = True) -> list[Term]:
    """The member's words as the english configuration stems them (stop words dropped; slashes read
    as spaces, as in the indexed text), then the policy terms the glossary gives for them, as
    phrases; one statement for both."""
    expansions = policy_terms(query) if expand and settings.SEARCH_EXPANSION_WEIGHT > 0 else []
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 0, lexeme, positions[1] FROM unnest({SEARCH_VECTOR_SQL.format(text='%s')}) "
            "UNION ALL SELECT 1, phraseto_tsquery('english', t.phrase)::text, t.n "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS t(phrase, n) ORDER BY 1, 3", [query, expansions])
        rows = cursor.fetchall()
    terms: list[Term] = []
    seen = set()
    for kind, text, _ in rows:
        tsquery = text if kind else _lexeme_tsquery(text)
        if tsquery and tsquery not in seen:
            seen.add(tsquery)
            terms.append(Term(tsquery, settings.SEARCH_EXPANSION_WEIGHT if kind else 1.0))
    return terms


def _any_of(terms: list[Term]) -> str:
    return " | ".join(f"({term.tsquery})" for term in terms)


def _vector_ranked(owner, query, document_ids, limit) -> list[tuple]:
    """The member's passages nearest the query by exact cosine distance, over vectors of the active model."""
    space = active_space()
    sha = query_vector_cached(query, space)
    document_filter = "AND v.document_id = ANY(%(documents)s::uuid[])" if document_ids else ""
    sql = f"""
        SELECT v.chunk_id, v.embedding <=> q.embedding AS distance
          FROM {ChunkVector._meta.db_table} AS v
          JOIN ingestion_document AS d ON d.id = v.document_id
         CROSS JOIN (SELECT embedding FROM {EmbeddingCache._meta.db_table}
                      WHERE model = %(model)s AND dimensions = %(dimensions)s AND text_sha = %(sha)s) AS q
         WHERE v.owner_id = %(owner)s AND v.model = %(model)s AND v.dimensions = %(dimensions)s
           AND d.status = %(complete)s {document_filter}
         ORDER BY distance, v.chunk_id
         LIMIT %(limit)s"""
    params = {"owner": owner.pk, "model": space.model, "dimensions": space.dimensions, "sha": sha,
              "complete": Status.COMPLETE, "documents": [str(d) for d in document_ids or []], "limit": limit}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(chunk_id, 1.0 - float(distance)) for chunk_id, distance in cursor.fetchall()]


def _text_ranked(owner, terms: list[Term], document_ids, limit) -> list[tuple]:
    """Passages containing any query term, ranked by BM25 with presence-only term frequency: the sum
    of the idf (over the member's passages) of the terms a passage holds, scaled by BM25's length
    normalisation (a short passage holding the terms beats a long one). OR, not AND: a natural
    question rarely shares every word with its answer; idf keeps "plan" or "pay", in nearly every
    passage, from outweighing "MRI".

    One pass over the passages holding any term: each row records which terms it holds, the term
    counts (document frequencies) and the average length come from those same rows (a passage
    holding a term holds "any"), and the score is summed from them, so no term costs a scan of its
    own. Counting occurrences (ts_rank) cost a third of the ranking's time and changed no hit@5.
    """
    if not terms:
        return []
    holds = ", ".join(f"c.search_vector @@ %(term_{i})s::tsquery AS h{i}" for i in range(len(terms)))
    frequencies = ", ".join(f"count(*) FILTER (WHERE h{i})::float8 AS n{i}" for i in range(len(terms)))
    idf_sum = " + ".join(f"CASE WHEN m.h{i} THEN %(weight_{i})s * ln(1 + (member.n - df.n{i} + 0.5) / (df.n{i} + 0.5)) "
                         "ELSE 0 END" for i in range(len(terms)))
    length_norm = "(%(k1)s + 1) / (1 + %(k1)s * (1 - %(b)s + %(b)s * m.len / df.avglen))"
    document_filter = "AND m.document_id = ANY(%(documents)s::uuid[])" if document_ids else ""
    sql = f"""
        WITH matched AS MATERIALIZED (
            SELECT c.chunk_id AS id, c.document_id, c.token_count::float8 AS len, {holds}
              FROM {ChunkSearch._meta.db_table} AS c
             WHERE c.owner_id = %(owner)s AND c.search_vector @@ %(any)s::tsquery
        ),
        df AS (SELECT {frequencies}, greatest(avg(len), 1) AS avglen FROM matched),
        member AS (SELECT count(*)::float8 AS n FROM {ChunkSearch._meta.db_table} WHERE owner_id = %(owner)s)
        SELECT m.id, ({idf_sum}) * {length_norm} AS score
          FROM matched AS m
          JOIN ingestion_document AS d ON d.id = m.document_id
         CROSS JOIN df CROSS JOIN member
         WHERE d.status = %(complete)s {document_filter}
         ORDER BY score DESC, m.id
         LIMIT %(limit)s"""
    params = {"owner": owner.pk, "any": _any_of(terms), "complete": Status.COMPLETE,
              "documents": [str(d) for d in document_ids or []], "limit": limit, "k1": BM25_K1, "b": BM25_B,
              **{f"term_{i}": term.tsquery for i, term in enumerate(terms)},
              **{f"weight_{i}": term.weight for i, term in enumerate(terms)}}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(chunk_id, float(score)) for chunk_id, score in cursor.fetchall()]


@dataclass
class _Passage:
    document_id: str
    filename: str
    page_start: int
    page_end: int
    heading_path: list
    text: str
    snippet: str


def _passages(chunk_ids: list, terms: list[Term]) -> dict:
    """The hits' passages with their document's filename and a highlighted snippet, in one statement."""
    if not chunk_ids:
        return {}
    options = ", ".join(f"{name}={value}" for name, value in SNIPPET_HEADLINE_OPTIONS.items())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.id, c.document_id, d.filename, c.page_start, c.page_end, c.heading_path, c.text, "
            f"ts_headline('english', c.text, %s::tsquery, %s) "
            f"FROM {Chunk._meta.db_table} AS c JOIN ingestion_document AS d ON d.id = c.document_id "
            f"WHERE c.id = ANY(%s::uuid[])",
            [_any_of(terms), options, [str(chunk_id) for chunk_id in chunk_ids]])
        return {row[0]: _Passage(row[1], row[2], row[3], row[4],
                                 json.loads(row[5]) if isinstance(row[5], str) else row[5], row[6], row[7])
                for row in cursor.fetchall()}


_side_pool: ThreadPoolExecutor | None = None
_side_pool_lock = threading.Lock()


class _Done:
    """A ranking already computed in the calling thread (same interface as a Future)."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _on_side_connection(function, *args):
    """Run ``function`` in a pool thread, on that thread's own database connection.

    The connection is kept between searches and checked like a request's (age, errors, health).
    """
    close_old_connections()
    try:
        return function(*args)
    except Exception:
        connection.close()  # a broken connection is not kept for the next search
        raise


class _Beside:
    """A ranking running in the side pool; if that fails, it runs again in the calling thread."""

    def __init__(self, function, args):
        self.function, self.args = function, args
        self.future = _pool().submit(_on_side_connection, function, *args)

    def result(self):
        try:
            return self.future.result()
        except Exception:
            return self.function(*self.args)


def _pool() -> ThreadPoolExecutor:
    global _side_pool
    with _side_pool_lock:
        if _side_pool is None:
            _side_pool = ThreadPoolExecutor(max_workers=settings.SEARCH_SIDE_THREADS,
                                            thread_name_prefix="search-ranking")
        return _side_pool


def side_connections_close() -> None:
    """Close the side threads' database connections and stop the threads (before a database is dropped)."""
    global _side_pool
    with _side_pool_lock:
        pool, _side_pool = _side_pool, None
    if pool is None:
        return
    threads = pool._max_workers
    everyone = threading.Barrier(threads)

    def close():  # each call holds its thread at the barrier, so every thread closes its own connection
        connection.close()
        everyone.wait(timeout=30)

    for future in [pool.submit(close) for _ in range(threads)]:
        future.result()
    pool.shutdown()


def _beside(function, *args):
    """Start ``function(*args)`` on a second database connection, so it runs while this thread works.

    Inside a transaction (``atomic``) another connection would not see this one's uncommitted rows,
    so the function then runs here, now. SEARCH_SIDE_THREADS = 0 turns the side connection off.
    """
    if connection.in_atomic_block or settings.SEARCH_SIDE_THREADS <= 0:
        return _Done(function(*args))
    return _Beside(function, args)


def _fusion(ranked: dict[str, dict]):
    """The hybrid score of a candidate, by SEARCH_FUSION:

    - "rrf" (reciprocal rank fusion, the default): sum of weight / (SEARCH_RRF_K + rank). Only ranks
      count, so a passage both rankings place high wins over one that only one of them likes.
    - "relative" (relative score fusion): each mode's scores scaled to 0..1 over its candidates
      (best 1, worst 0, absent 0), then the weighted sum; a mode's certainty is kept.
    On the labelled sets (docs/search.md) RRF is the better of the two with a real embedding model.
    """
    weights = {"vector": settings.SEARCH_VECTOR_WEIGHT, "text": settings.SEARCH_TEXT_WEIGHT}
    if settings.SEARCH_FUSION == "rrf":
        rrf_k = settings.SEARCH_RRF_K
        return lambda entry: sum(weights[name] / (rrf_k + rank) for name, (rank, _) in entry.items())
    bounds = {}
    for name in weights:
        scores = [entry[name][1] for entry in ranked.values() if name in entry]
        if scores:
            bounds[name] = (min(scores), max(scores))

    def scaled(name: str, score: float) -> float:
        low, high = bounds[name]
        return 1.0 if high == low else (score - low) / (high - low)

    return lambda entry: sum(weights[name] * scaled(name, score) for name, (_, score) in entry.items())


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
    terms = query_terms(query)
    ranked: dict[str, dict] = {}
    text_ranking = None
    if mode == "hybrid":  # the two rankings are independent: the text one runs beside the vector one
        text_ranking = _beside(_text_ranked, owner, terms, document_ids, pool)
    if mode in ("vector", "hybrid"):
        for rank, (chunk_id, score) in enumerate(_vector_ranked(owner, query, document_ids, pool), start=1):
            ranked.setdefault(chunk_id, {})["vector"] = (rank, score)
    if mode in ("text", "hybrid"):
        rows = text_ranking.result() if text_ranking else _text_ranked(owner, terms, document_ids, pool)
        for rank, (chunk_id, score) in enumerate(rows, start=1):
            ranked.setdefault(chunk_id, {})["text"] = (rank, score)
    fused = _fusion(ranked)

    def order_key(item):
        chunk_id, entry = item
        primary = fused(entry) if mode == "hybrid" else entry[mode][1]
        return (-primary, str(chunk_id))

    best = sorted(ranked.items(), key=order_key)[:k]
    rows = _passages([chunk_id for chunk_id, _ in best], terms)
    hits = []
    for chunk_id, entry in best:
        chunk = rows.get(chunk_id)
        if chunk is None:  # its document was deleted or re-chunked between the ranking and this read
            continue
        vector_rank, vector_score = entry.get("vector", (None, None))
        text_rank, text_score = entry.get("text", (None, None))
        fused_score = round(fused(entry), 6) if mode == "hybrid" else None
        scores = {name: round(score, 6) for name, (_, score) in entry.items()}
        if fused_score is not None:
            scores["fused"] = fused_score
        hits.append(SearchHit(
            chunk_id=str(chunk_id), document_id=str(chunk.document_id), filename=chunk.filename,
            page_start=chunk.page_start, page_end=chunk.page_end, heading_path=chunk.heading_path, text=chunk.text,
            snippet=chunk.snippet, score=fused_score if mode == "hybrid" else round(entry[mode][1], 6), scores=scores,
            vector_score=None if vector_score is None else round(vector_score, 6),
            text_score=None if text_score is None else round(text_score, 6), fused_score=fused_score,
            vector_rank=vector_rank, text_rank=text_rank))
    return hits
