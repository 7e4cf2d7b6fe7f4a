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

from ingestion.models import SEARCH_VECTOR_SQL, Chunk, ChunkSearch, ChunkVector, EmbeddingCache

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


def _staging(cursor, name: str, columns: str) -> None:
    """An empty temporary table to COPY into, made once per database session.

    Creating a temporary table writes the system catalogs (~2 ms, more than COPYing a small
    document's rows): it is created on first use and kept, emptied at every commit.
    """
    cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}) ON COMMIT DELETE ROWS")
    cursor.execute(f"DELETE FROM {name}")  # rows of an earlier call in this same transaction


def _halfvec_binary(vector) -> bytes:
    """halfvec's binary form: dimensions, a zero, then big-endian float16 values."""
    values = list(vector)
    return struct.pack(f">HH{len(values)}e", len(values), 0, *values)


def store_vectors(*, model: str, dimensions: int, fresh: dict[str, list[float]],
                  chunk_shas: dict[uuid.UUID, str]) -> int:
    """Store fresh vectors in the embedding cache (keyed by text sha; existing keys are kept), then
    give each chunk the cache entry of its text as its vector, in one transaction.

    A chunk holding a vector of this model already keeps it; one holding another model's vector (the
    backend changed) gets the new one. Returns the number of chunks set.
    """
    if not chunk_shas:
        return 0
    cache, vectors = EmbeddingCache._meta.db_table, ChunkVector._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        _durable_at_stage_end(cursor)
        if fresh:
            _staging(cursor, "fresh_vectors", "text_sha text, embedding halfvec")
            cursor.copy_expert("COPY fresh_vectors FROM STDIN WITH (FORMAT binary)", _binary_copy(
                (sha.encode(), _halfvec_binary(vector)) for sha, vector in fresh.items()))
            cursor.execute(f"INSERT INTO {cache} (model, dimensions, text_sha, embedding, created_at) "
                           "SELECT %s, %s, text_sha, embedding, now() FROM fresh_vectors "
                           "ON CONFLICT (model, dimensions, text_sha) DO NOTHING", [model, dimensions])
        _staging(cursor, "chunk_shas", "id uuid, text_sha text")
        cursor.copy_expert("COPY chunk_shas FROM STDIN WITH (FORMAT binary)", _binary_copy(
            (uuid.UUID(str(chunk_id)).bytes, sha.encode()) for chunk_id, sha in chunk_shas.items()))
        cursor.execute(f"INSERT INTO {vectors} (chunk_id, owner_id, document_id, model, dimensions, embedding) "
                       "SELECT c.id, c.owner_id, c.document_id, e.model, e.dimensions, e.embedding "
                       f"FROM chunk_shas AS s JOIN {Chunk._meta.db_table} AS c ON c.id = s.id "
                       f"JOIN {cache} AS e ON e.text_sha = s.text_sha AND e.model = %s AND e.dimensions = %s "
                       "ON CONFLICT (chunk_id) DO UPDATE SET model = EXCLUDED.model, dimensions = EXCLUDED.dimensions, "
                       f"embedding = EXCLUDED.embedding WHERE {vectors}.model <> EXCLUDED.model "
                       f"OR {vectors}.dimensions <> EXCLUDED.dimensions", [model, dimensions])
        return cursor.rowcount


def _durable_at_stage_end(cursor) -> None:
    """Commit this bulk write without waiting for its WAL to reach disk.

    Safe here: the stage's result is recorded by a later, ordinary commit, and PostgreSQL flushes
    WAL in order, so once the stage counts as done its rows are on disk too. A crash before that
    loses at most the rows of an unfinished stage, which runs again (it is idempotent).
    """
    cursor.execute("SET LOCAL synchronous_commit = off")


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
        _durable_at_stage_end(cursor)
        _staging(cursor, "new_chunks", "id uuid, document_id uuid, owner_id bigint, chunker_version text, "
                 "ordinal integer, text text, chunk_sha text, token_count integer, page_start integer, "
                 "page_end integer, heading_path jsonb")
        cursor.copy_expert("COPY new_chunks FROM STDIN WITH (FORMAT binary)", stream)
        cursor.execute(f"INSERT INTO {Chunk._meta.db_table} ({columns}) SELECT {columns} FROM new_chunks "
                       "ON CONFLICT DO NOTHING")
        inserted = cursor.rowcount
    return inserted


def index_chunks(document_id) -> int:
    """Build the full-text entries (ingestion_chunksearch) of a document's passages that have none.

    One INSERT ... SELECT: PostgreSQL parses each passage's text into its english tsvector, which is
    most of the cost of storing a passage; kept apart from insert_chunks so each is timed on its own.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ChunkSearch._meta.db_table} (chunk_id, owner_id, document_id, token_count, search_vector) "
            f"SELECT c.id, c.owner_id, c.document_id, c.token_count, {SEARCH_VECTOR_SQL.format(text='c.text')} "
            f"FROM {Chunk._meta.db_table} AS c WHERE c.document_id = %s AND NOT EXISTS "
            f"(SELECT 1 FROM {ChunkSearch._meta.db_table} AS s WHERE s.chunk_id = c.id) ON CONFLICT (chunk_id) DO NOTHING",
            [str(document_id)])
        return cursor.rowcount
