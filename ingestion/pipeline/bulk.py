"""Bulk writes of vectors: binary COPY into a temporary table, then one set-based statement.

A 1536-dimension vector as SQL text is ~15 KB to format in Python and to parse in PostgreSQL;
in COPY's binary format it is the 3 KB halfvec the column stores. Vectors go to the database
once (into the embedding cache) and reach the chunks' vector table by a join, never back through
Python.
"""
from __future__ import annotations

import io
import struct
import uuid
from django.db import connection, transaction

from ingestion.models import Chunk, ChunkVector, EmbeddingCache

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)


def _field(data: bytes) -> bytes:
    return struct.pack("!i", len(data)) + data


def _binary_copy(rows) -> io.BytesIO:
    """COPY binary stream of rows of already-encoded fields."""
    out = io.BytesIO()
    out.write(_HEADER)
    for fields in rows:
        out.write(struct.pack("!h", len(fields)))
        for data in fields:
            out.write(_field(data))
    out.write(_TRAILER)
    out.seek(0)
    return out


def _halfvec_binary(vector) -> bytes:
    """halfvec's binary form: dimensions, a zero, then big-endian float16 values."""
    values = list(vector)
    return struct.pack(f">HH{len(values)}e", len(values), 0, *values)


def cache_vectors(*, model: str, dimensions: int, vectors: dict[str, list[float]]) -> None:
    """Store fresh vectors in the embedding cache (keyed by text sha); existing keys are kept."""
    if not vectors:
        return
    table = EmbeddingCache._meta.db_table
    stream = _binary_copy((sha.encode(), _halfvec_binary(vector)) for sha, vector in vectors.items())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE fresh_vectors (text_sha text, embedding halfvec) ON COMMIT DROP")
        cursor.copy_expert("COPY fresh_vectors FROM STDIN WITH (FORMAT binary)", stream)
        cursor.execute(f"INSERT INTO {table} (model, dimensions, text_sha, embedding, created_at) "
                       "SELECT %s, %s, text_sha, embedding, now() FROM fresh_vectors "
                       "ON CONFLICT (model, dimensions, text_sha) DO NOTHING", [model, dimensions])
        cursor.execute("DROP TABLE fresh_vectors")


def vectors_from_cache(*, model: str, dimensions: int, chunk_shas: dict[uuid.UUID, str]) -> int:
    """Give each chunk the cache entry of its text as its vector, in one INSERT from the cache.

    A chunk holding a vector of this model already keeps it; one holding another model's vector (the
    backend changed) gets the new one. Returns the number of chunks set.
    """
    if not chunk_shas:
        return 0
    stream = _binary_copy((uuid.UUID(str(chunk_id)).bytes, sha.encode()) for chunk_id, sha in chunk_shas.items())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE chunk_shas (id uuid, text_sha text) ON COMMIT DROP")
        cursor.copy_expert("COPY chunk_shas FROM STDIN WITH (FORMAT binary)", stream)
        cursor.execute(f"INSERT INTO {ChunkVector._meta.db_table} (chunk_id, owner_id, document_id, model, dimensions, "
                       "embedding) SELECT c.id, c.owner_id, c.document_id, e.model, e.dimensions, e.embedding "
                       f"FROM chunk_shas AS s JOIN {Chunk._meta.db_table} AS c ON c.id = s.id "
                       f"JOIN {EmbeddingCache._meta.db_table} AS e ON e.text_sha = s.text_sha AND e.model = %s "
                       "AND e.dimensions = %s ON CONFLICT (chunk_id) DO UPDATE SET model = EXCLUDED.model, "
                       "dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding WHERE "
                       f"{ChunkVector._meta.db_table}.model <> EXCLUDED.model OR "
                       f"{ChunkVector._meta.db_table}.dimensions <> EXCLUDED.dimensions",
                       [model, dimensions])
        stored = cursor.rowcount
        cursor.execute("DROP TABLE chunk_shas")
    return stored


def insert_chunks(rows: list[Chunk]) -> int:
    """Insert chunks (without vectors) by binary COPY; rows whose (document, version, ordinal) exist are skipped."""
    if not rows:
        return 0
    import json

    stream = _binary_copy((
        row.id.bytes, uuid.UUID(str(row.document_id)).bytes, struct.pack("!q", row.owner_id),
        row.chunker_version.encode(), struct.pack("!i", row.ordinal), row.text.encode(), row.chunk_sha.encode(),
        struct.pack("!i", row.token_count), struct.pack("!i", row.page_start), struct.pack("!i", row.page_end),
        b"\x01" + json.dumps(row.heading_path, ensure_ascii=False).encode(),
    ) for row in rows)
    columns = ("id, document_id, owner_id, chunker_version, ordinal, text, chunk_sha, token_count, page_start, "
               "page_end, heading_path")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE new_chunks (id uuid, document_id uuid, owner_id bigint, chunker_version text, "
                       "ordinal integer, text text, chunk_sha text, token_count integer, page_start integer, "
                       "page_end integer, heading_path jsonb) ON COMMIT DROP")
        cursor.copy_expert("COPY new_chunks FROM STDIN WITH (FORMAT binary)", stream)
        cursor.execute(f"INSERT INTO {Chunk._meta.db_table} ({columns}) SELECT {columns} FROM new_chunks "
                       "ON CONFLICT DO NOTHING")
        inserted = cursor.rowcount
        cursor.execute("DROP TABLE new_chunks")
    return inserted
