"""Bulk writes of passages and vectors: binary COPY straight into the tables, each row written once.

A 1536-dimension vector as SQL text is ~15 KB to format in Python and to parse in PostgreSQL;
in COPY's binary format it is the 3 KB halfvec the column stores. When a straight COPY meets a
row that already exists (a stage run again, two documents caching the same text at once), the
transaction is done again through a staging table and a set-based INSERT ... ON CONFLICT, so every
write stays idempotent; the common case pays no savepoint for that. Vectors of text cached before
reach the passages by a join, never back through Python.
"""
from __future__ import annotations

import io
import json
import struct
import uuid
from datetime import datetime
from datetime import timezone as dt_timezone

import numpy as np
import psycopg2
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from pgvector import HalfVector

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
    """halfvec's binary form (pgvector's own encoder), from a float32 array as the providers give it
    (a list of floats also works, converted first): no per-number Python work."""
    return HalfVector(np.asarray(vector, dtype=np.float32)).to_binary()


# What a straight COPY raises when it meets a row that exists (copy_expert raises the driver's own error).
CONFLICT = (IntegrityError, psycopg2.IntegrityError)


def store_vectors(*, model: str, dimensions: int, fresh: dict[str, np.ndarray],
                  chunk_shas: dict[uuid.UUID, str], owner_id: int, document_id) -> int:
    """Store fresh vectors in the embedding cache (keyed by text sha; existing keys are kept) and give
    each chunk the vector of its text, in one transaction.

    Fresh vectors are encoded once and COPYed straight into the cache and into the chunks' vector
    rows; chunks whose text was cached before get theirs from the cache by one INSERT ... SELECT.
    A chunk holding a vector of this model already keeps it; one holding another model's vector (the
    backend changed) gets the new one. If a straight COPY meets an existing row (another document
    cached the same text meanwhile, a chunk holds another model's vector), the transaction is undone
    and done again the idempotent way. Returns the number of chunks set.
    """
    if not chunk_shas:
        return 0
    encoded = {sha: _halfvec_binary(vector) for sha, vector in fresh.items()}
    for straight in (True, False):
        try:
            with transaction.atomic():  # the transaction (a savepoint when the caller has one open)
                return _write_vectors(model, dimensions, encoded, chunk_shas, owner_id, document_id, straight=straight)
        except CONFLICT:
            if not straight:
                raise
    raise AssertionError("unreachable")


def _write_vectors(model: str, dimensions: int, encoded: dict[str, bytes], chunk_shas: dict, owner_id: int,
                   document_id, *, straight: bool) -> int:
    cache, vectors = EmbeddingCache._meta.db_table, ChunkVector._meta.db_table
    from_fresh = {chunk_id: sha for chunk_id, sha in chunk_shas.items() if sha in encoded}
    from_cache = {chunk_id: sha for chunk_id, sha in chunk_shas.items() if sha not in encoded}
    model_bytes, dimensions_bytes = model.encode(), struct.pack("!i", dimensions)
    stored = 0
    with connection.cursor() as cursor:
        _durable_at_stage_end(cursor)
        if encoded and straight:
            now = _timestamptz_binary(timezone.now())
            cursor.copy_expert(f"COPY {cache} (model, dimensions, text_sha, embedding, created_at) FROM STDIN "
                               "WITH (FORMAT binary)", _binary_copy(
                                   (model_bytes, dimensions_bytes, sha.encode(), data, now) for sha, data in encoded.items()))
            owner, document = struct.pack("!i", owner_id), uuid.UUID(str(document_id)).bytes
            cursor.copy_expert(f"COPY {vectors} (chunk_id, owner_id, document_id, model, dimensions, embedding) "
                               "FROM STDIN WITH (FORMAT binary)", _binary_copy(
                                   (uuid.UUID(str(chunk_id)).bytes, owner, document, model_bytes, dimensions_bytes,
                                    encoded[sha]) for chunk_id, sha in from_fresh.items()))
            stored += len(from_fresh)
        elif encoded:
            # keep texts another document cached meanwhile; the chunks take their vectors by the join below,
            # which also replaces another model's vector
            _staging(cursor, "fresh_vectors", "text_sha text, embedding halfvec")
            cursor.copy_expert("COPY fresh_vectors FROM STDIN WITH (FORMAT binary)", _binary_copy(
                (sha.encode(), data) for sha, data in encoded.items()))
            cursor.execute(f"INSERT INTO {cache} (model, dimensions, text_sha, embedding, created_at) "
                           "SELECT %s, %s, text_sha, embedding, now() FROM fresh_vectors "
                           "ON CONFLICT (model, dimensions, text_sha) DO NOTHING", [model, dimensions])
            from_cache.update(from_fresh)
        if from_cache:
            _staging(cursor, "chunk_shas", "id uuid, text_sha text")
            cursor.copy_expert("COPY chunk_shas FROM STDIN WITH (FORMAT binary)", _binary_copy(
                (uuid.UUID(str(chunk_id)).bytes, sha.encode()) for chunk_id, sha in from_cache.items()))
            cursor.execute(f"INSERT INTO {vectors} (chunk_id, owner_id, document_id, model, dimensions, embedding) "
                           "SELECT c.id, c.owner_id, c.document_id, e.model, e.dimensions, e.embedding "
                           f"FROM chunk_shas AS s JOIN {Chunk._meta.db_table} AS c ON c.id = s.id "
                           f"JOIN {cache} AS e ON e.text_sha = s.text_sha AND e.model = %s AND e.dimensions = %s "
                           "ON CONFLICT (chunk_id) DO UPDATE SET model = EXCLUDED.model, "
                           f"dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding "
                           f"WHERE {vectors}.model <> EXCLUDED.model OR {vectors}.dimensions <> EXCLUDED.dimensions",
                           [model, dimensions])
            stored += cursor.rowcount
    return stored


_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=dt_timezone.utc)


def _timestamptz_binary(moment: datetime) -> bytes:
    """timestamptz's binary form: microseconds since 2000-01-01 UTC."""
    delta = moment - _POSTGRES_EPOCH
    return struct.pack("!q", (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)


def _durable_at_stage_end(cursor) -> None:
    """Commit this bulk write without waiting for its WAL to reach disk.

    Safe here: the stage's result is recorded by a later, ordinary commit, and PostgreSQL flushes
    WAL in order, so once the stage counts as done its rows are on disk too. A crash before that
    loses at most the rows of an unfinished stage, which runs again (it is idempotent).
    """
    cursor.execute("SET LOCAL synchronous_commit = off")


def insert_chunks(rows: list[Chunk], *, straight: bool = False) -> int:
    """Insert chunks (without vectors) by binary COPY, inside the caller's transaction (or one of its own).

    ``straight``: the caller checked in this transaction that none of these rows exist, so they are
    COPYed straight into the table, each written once; if another writer added one meanwhile, this
    raises one of CONFLICT and the caller's transaction is to be done again without ``straight``.
    Otherwise rows whose (document, version, ordinal) exist are skipped (staging table + ON CONFLICT).
    """
    if not rows:
        return 0

    def stream():
        return _binary_copy((
            row.id.bytes, uuid.UUID(str(row.document_id)).bytes, struct.pack("!i", row.owner_id),
            row.chunker_version.encode(), struct.pack("!i", row.ordinal), row.text.encode(), row.chunk_sha.encode(),
            struct.pack("!i", row.token_count), struct.pack("!i", row.page_start), struct.pack("!i", row.page_end),
            b"\x01" + json.dumps(row.heading_path, ensure_ascii=False).encode(),
        ) for row in rows)
    columns = ("id, document_id, owner_id, chunker_version, ordinal, text, chunk_sha, token_count, page_start, "
               "page_end, heading_path")
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        _durable_at_stage_end(cursor)
        if straight:
            cursor.copy_expert(f"COPY {Chunk._meta.db_table} ({columns}) FROM STDIN WITH (FORMAT binary)", stream())
            return len(rows)
        _staging(cursor, "new_chunks", "id uuid, document_id uuid, owner_id integer, chunker_version text, "
                 "ordinal integer, text text, chunk_sha text, token_count integer, page_start integer, "
                 "page_end integer, heading_path jsonb")
        cursor.copy_expert("COPY new_chunks FROM STDIN WITH (FORMAT binary)", stream())
        cursor.execute(f"INSERT INTO {Chunk._meta.db_table} ({columns}) SELECT {columns} FROM new_chunks "
                       "ON CONFLICT DO NOTHING")
        return cursor.rowcount


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
