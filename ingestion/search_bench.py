"""Search latency for one member with many passages: p50/p95 per mode, through the service and the API.

The benchmark member's passages are made inside PostgreSQL (random unit vectors of the active model's
size, text drawn from an insurance vocabulary), so 20,000 rows take seconds, not minutes. Query
vectors come from the active backend once and are then cached, as repeated questions are; the
first-time provider call is not part of these numbers.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from rest_framework.test import APIClient

from ingestion.chunking import CHUNKER_VERSION
from ingestion.models import Document
from ingestion.pipeline.bulk import index_chunks
from ingestion.providers.embeddings import EmbeddingSpace
from ingestion.search import search_chunks
from ingestion.statuses import Status

BENCH_USERNAME = "bench-search"
# Words the synthetic passages are made of: the vocabulary of the sample documents.
VOCABULARY = (
    "deductible coinsurance copay copayment premium network provider specialist referral prior authorization "
    "emergency urgent care hospital inpatient outpatient surgery imaging MRI scan x-ray laboratory prescription "
    "generic brand specialty drug tier formulary pharmacy mail order supply appeal denial grievance external "
    "review claim billed allowed amount plan paid member services eligibility enrollment dependent spouse child "
    "newborn maternity prenatal delivery mental health therapy substance use behavioral exclusion cosmetic "
    "experimental dental vision hearing acupuncture chiropractic physical therapy rehabilitation equipment "
    "coordination benefits primary secondary out-of-pocket maximum limit calendar year family individual "
    "covered not covered service visit day days month months percent dollars within before after required"
).split()
PASSAGE_WORDS = 120


@dataclass
class Timing:
    path: str
    mode: str
    chunks: int
    p50_ms: float
    p95_ms: float
    runs: int


def bench_member_create(*, chunks: int, space: EmbeddingSpace):
    """A fresh benchmark member owning one complete document of ``chunks`` passages with vectors."""
    bench_member_delete()
    owner = get_user_model().objects.create(username=BENCH_USERNAME)
    with transaction.atomic():
        document = Document.objects.create(owner=owner, filename="benchmark.pdf", size=0, file_sha256="0" * 64,
                                           storage_path="", status=Status.COMPLETE, page_count=max(1, chunks // 4))
        with connection.cursor() as cursor:
            # WHERE s.i > 0 makes each subquery depend on the row, so every passage gets its own draws.
            cursor.execute("""
                INSERT INTO ingestion_chunk (id, document_id, owner_id, chunker_version, ordinal, text, chunk_sha,
                                             token_count, page_start, page_end, heading_path)
                SELECT md5(%(document)s || ':' || s.i)::uuid, %(document)s::uuid,
                       %(owner)s, %(version)s, s.i,
                       array_to_string(ARRAY(SELECT (%(words)s::text[])[1 + floor(random() * %(word_count)s)::int]
                                               FROM generate_series(1, %(passage_words)s) WHERE s.i >= 0), ' '),
                       md5(s.i::text), %(passage_words)s, 1 + s.i / 4, 1 + s.i / 4, '[]'::jsonb
                  FROM generate_series(0, %(count)s - 1) AS s(i);
                INSERT INTO ingestion_chunkvector (chunk_id, owner_id, document_id, model, dimensions, text_sha,
                                                   embedding)
                SELECT md5(%(document)s || ':' || s.i)::uuid, %(owner)s, %(document)s::uuid, %(model)s, %(dimensions)s,
                       encode(sha256(convert_to(%(document)s || ':' || s.i, 'UTF8')), 'hex'),
                       l2_normalize(ARRAY(SELECT random() - 0.5 FROM generate_series(1, %(dimensions)s)
                                          WHERE s.i >= 0)::real[]::halfvec)
                  FROM generate_series(0, %(count)s - 1) AS s(i)
            """, {"document": str(document.id), "owner": owner.pk,
                  "version": CHUNKER_VERSION, "words": VOCABULARY, "word_count": len(VOCABULARY),
                  "passage_words": PASSAGE_WORDS, "dimensions": space.dimensions, "model": space.model,
                  "count": chunks})
        index_chunks(document.id)
    with connection.cursor() as cursor:
        # Autovacuum visits a table after this many inserts; the searches then see it as members' do.
        cursor.execute("VACUUM ANALYZE ingestion_chunk")
        cursor.execute("VACUUM ANALYZE ingestion_chunkvector")
        cursor.execute("VACUUM ANALYZE ingestion_chunksearch")
    return owner


def bench_member_delete() -> None:
    get_user_model().objects.filter(username=BENCH_USERNAME).delete()


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95


def time_service(*, owner, queries: list[str], mode: str, runs: int, chunks: int) -> Timing:
    for query in queries:  # warm the query-vector cache and the connection
        search_chunks(owner=owner, query=query, k=5, mode=mode)
    samples = []
    for index in range(runs):
        started = time.perf_counter()
        search_chunks(owner=owner, query=queries[index % len(queries)], k=5, mode=mode)
        samples.append((time.perf_counter() - started) * 1000)
    p50, p95 = _percentiles(samples)
    return Timing("service", mode, chunks, p50, p95, runs)


def time_api(*, owner, queries: list[str], mode: str, runs: int, chunks: int) -> Timing:
    """The search endpoint through Django's full request path (middleware, auth, DRF), in process."""
    client = APIClient()
    client.force_authenticate(owner)
    samples = []
    for index in range(len(queries) + runs):
        started = time.perf_counter()
        response = client.post("/api/v1/search/", {"query": queries[index % len(queries)], "k": 5, "mode": mode},
                               format="json")
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"search API answered {response.status_code}: {response.content[:200]!r}")
        if index >= len(queries):
            samples.append(elapsed)
    p50, p95 = _percentiles(samples)
    return Timing("api", mode, chunks, p50, p95, runs)


def hnsw_index_name(dimensions: int) -> str:
    return f"bench_chunk_embedding_hnsw_{dimensions}"


def hnsw_index_create(dimensions: int) -> float:
    """Build an HNSW index over vectors of one size (an ANN index needs a fixed dimension); seconds taken."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(dimensions)} ON ingestion_chunkvector USING hnsw "
                       f"((embedding::halfvec({dimensions})) halfvec_cosine_ops) "
                       f"WHERE dimensions = {dimensions}")
    return time.perf_counter() - started


def hnsw_index_drop(dimensions: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {hnsw_index_name(dimensions)}")


def time_vector_sql(*, owner, vectors: list[list[float]], dimensions: int, runs: int, ann: bool,
                    chunks: int) -> tuple[Timing, float]:
    """The vector ranking alone, exact or through the HNSW index; returns the timing and recall@5 of ANN."""
    expression = f"embedding::halfvec({dimensions})" if ann else "embedding"
    sql = (f"SELECT chunk_id FROM ingestion_chunkvector WHERE owner_id = %s AND dimensions = {dimensions} "
           f"ORDER BY {expression} <=> %s::halfvec({dimensions}) LIMIT 20")
    literals = ["[" + ",".join(f"{x:.6g}" for x in vector) + "]" for vector in vectors]
    samples, recall = [], []
    with connection.cursor() as cursor:
        if ann:
            cursor.execute("SET hnsw.iterative_scan = relaxed_order")
        for index in range(runs):
            literal = literals[index % len(literals)]
            started = time.perf_counter()
            cursor.execute(sql, [owner.pk, literal])
            found = [row[0] for row in cursor.fetchall()]
            samples.append((time.perf_counter() - started) * 1000)
            if ann and index < len(literals):
                cursor.execute(sql.replace(expression, "embedding"), [owner.pk, literal])
                exact = [row[0] for row in cursor.fetchall()]
                recall.append(len(set(found[:5]) & set(exact[:5])) / 5)
        if ann:
            cursor.execute("RESET hnsw.iterative_scan")
    p50, p95 = _percentiles(samples)
    return Timing("sql-hnsw" if ann else "sql-exact", "vector", chunks, p50, p95, runs), (
        statistics.mean(recall) if recall else 1.0)
