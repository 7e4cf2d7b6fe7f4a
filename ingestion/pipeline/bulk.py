"""Bulk writes of passages and vectors: binary COPY straight into the tables, each row written once.

A 1536-dimension vector as SQL text is ~15 KB to format in Python and to parse in PostgreSQL;
in COPY's binary format it is the 3 KB halfvec the column stores. When a straight COPY meets a
row that already exists (a stage run again, another worker's write), the transaction is done again
through a staging table and a set-based INSERT ... ON CONFLICT, so every write stays idempotent; the
common case pays no savepoint for that. Vectors of text embedded before reach new passages by a
join, never back through Python.
"""
from __future__ import annotations

import functools
import io
import json
import struct
import uuid

import numpy as np
import psycopg2
from django.db import IntegrityError, connection, transaction

from ingestion.models import SEARCH_VECTOR_SQL, Chunk, ChunkSearch, ChunkVector

_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_TRAILER = struct.pack("!h", -1)


_LENGTH = struct.Struct("!i")
_INT4_FIELD = struct.Struct("!ii")
_FIELD_COUNT = struct.Struct("!h")


def _field(data: bytes) -> bytes:
    """One field of a binary COPY row: its length, then its bytes."""
    return _LENGTH.pack(len(data)) + data


def _int4(value: int) -> bytes:
    """An integer field, framed."""
    return _INT4_FIELD.pack(4, value)


def _uuid_bytes(value) -> bytes:
    return value.bytes if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).bytes


def _binary_copy(columns: int, rows) -> io.BytesIO:
    """COPY binary stream of rows of ``columns`` fields, each row given as pieces of framed fields
    (``_field``, ``_int4``).

    Fields that are the same on every row (a document's id, the model) are framed once by the caller
    and passed as one piece; a row is then one join of ready bytes, a few microseconds of Python for
    a 3 KB vector row.
    """
    count = _FIELD_COUNT.pack(columns)
    out = io.BytesIO()
    out.write(_HEADER)
    for pieces in rows:
        out.write(count)
        out.write(b"".join(pieces))
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


def _halfvec_fields(vectors: dict[str, np.ndarray]) -> dict[str, bytes]:
    """Many vectors (of one size) as framed halfvec COPY fields: one numpy conversion for all of them.

    The layout is pgvector's binary halfvec (``pgvector.HalfVector.to_binary``): dimensions, a zero, then
    big-endian float16 values.
    """
    if not vectors:
        return {}
    matrix = np.asarray(list(vectors.values()), dtype=np.float32).astype(">f2")
    if matrix.ndim != 2:
        raise ValueError("vectors of different sizes cannot be stored together")
    dimensions = matrix.shape[1]
    head = _LENGTH.pack(4 + 2 * dimensions) + struct.pack(">HH", dimensions, 0)
    return {key: head + row.tobytes() for key, row in zip(vectors, matrix)}


# What a straight COPY raises when it meets a row that exists (copy_expert raises the driver's own error).
CONFLICT = (IntegrityError, psycopg2.IntegrityError)


def vector_donors(*, model: str, dimensions: int, shas) -> dict[str, uuid.UUID]:
    """For each text sha embedded before with this model (for any document), one passage holding its vector."""
    if not shas:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT DISTINCT ON (text_sha) text_sha, chunk_id FROM {ChunkVector._meta.db_table} "
                       "WHERE model = %s AND dimensions = %s AND text_sha = ANY(%s) ORDER BY text_sha",
                       [model, dimensions, sorted(set(shas))])
        return {sha: uuid.UUID(str(chunk_id)) for sha, chunk_id in cursor.fetchall()}


def store_vectors(*, model: str, dimensions: int, fresh: dict[str, np.ndarray],
                  chunk_shas: dict[uuid.UUID, str], owner_id: int, document_id,
                  donors: dict[str, uuid.UUID] | None = None) -> int:
    """Give each chunk (id -> sha of its embedded text) its vector, in one transaction.

    ``fresh`` vectors (by text sha, just paid for) are encoded once and COPYed straight into the
    chunks' vector rows; chunks whose text is not in ``fresh`` take a copy of the vector of their
    text's donor passage (``vector_donors``), by one INSERT ... SELECT that never brings it to Python.
    A chunk holding a vector of this model already keeps it; one holding another model's vector (the
    backend changed) gets the new one: the straight COPY then meets the existing row, and the
    transaction is undone and done again the idempotent way. Returns the number of chunks set.
    """
    if not chunk_shas:
        return 0
    encoded = _halfvec_fields(fresh)
    args = (model, dimensions, encoded, chunk_shas, owner_id, document_id, donors or {})
    try:
        with transaction.atomic():  # the transaction (a savepoint when the caller has one open)
            return _write_vectors(*args, straight=True)
    except CONFLICT:
        with transaction.atomic():
            return _write_vectors(*args, straight=False)


def _write_vectors(model: str, dimensions: int, encoded: dict[str, bytes], chunk_shas: dict, owner_id: int,
                   document_id, donors: dict, *, straight: bool) -> int:
    vectors, chunks = ChunkVector._meta.db_table, Chunk._meta.db_table
    from_fresh = {chunk_id: sha for chunk_id, sha in chunk_shas.items() if sha in encoded}
    from_stored = {chunk_id: sha for chunk_id, sha in chunk_shas.items() if sha not in encoded}
    columns = "chunk_id, owner_id, document_id, model, dimensions, text_sha, embedding"
    replace_other_model = (f"ON CONFLICT (chunk_id) DO UPDATE SET model = EXCLUDED.model, dimensions = EXCLUDED.dimensions, "
                           f"text_sha = EXCLUDED.text_sha, embedding = EXCLUDED.embedding "
                           f"WHERE {vectors}.model <> EXCLUDED.model OR {vectors}.dimensions <> EXCLUDED.dimensions")
    stored = 0
    with connection.cursor() as cursor:
        _durable_at_stage_end(cursor)
        if from_fresh and straight:
            same = _int4(owner_id) + _field(_uuid_bytes(document_id)) + _field(model.encode()) + _int4(dimensions)
            cursor.copy_expert(f"COPY {vectors} ({columns}) FROM STDIN WITH (FORMAT binary)", _binary_copy(7, (
                (_field(_uuid_bytes(chunk_id)), same, _field(sha.encode()), encoded[sha])
                for chunk_id, sha in from_fresh.items())))
            stored += len(from_fresh)
        elif from_fresh:
            _staging(cursor, "fresh_vectors", "id uuid, text_sha text, embedding halfvec")
            cursor.copy_expert("COPY fresh_vectors FROM STDIN WITH (FORMAT binary)", _binary_copy(3, (
                (_field(_uuid_bytes(chunk_id)), _field(sha.encode()), encoded[sha]) for chunk_id, sha in from_fresh.items())))
            cursor.execute(f"INSERT INTO {vectors} ({columns}) "
                           "SELECT c.id, c.owner_id, c.document_id, %s, %s, f.text_sha, f.embedding "
                           f"FROM fresh_vectors AS f JOIN {chunks} AS c ON c.id = f.id {replace_other_model}",
                           [model, dimensions])
            stored += cursor.rowcount
        lent = [(str(chunk_id), str(donors[sha]), sha) for chunk_id, sha in from_stored.items() if sha in donors]
        if lent:
            # a copy of the donor passage's vector, by primary key: never through Python, no staging table.
            # The donor is checked again (same text, same model): it may have been re-embedded or re-chunked
            # since it was found; a borrower left without a vector is noticed by the caller.
            cursor.execute(f"INSERT INTO {vectors} ({columns}) "
                           "SELECT c.id, c.owner_id, c.document_id, d.model, d.dimensions, d.text_sha, d.embedding "
                           "FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS s(id, donor, text_sha) "
                           f"JOIN {chunks} AS c ON c.id = s.id JOIN {vectors} AS d ON d.chunk_id = s.donor "
                           "AND d.text_sha = s.text_sha AND d.model = %s AND d.dimensions = %s "
                           f"{replace_other_model}",
                           [[row[0] for row in lent], [row[1] for row in lent], [row[2] for row in lent], model,
                            dimensions])
            stored += cursor.rowcount
    return stored


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
    raises one of CONFLICT and the caller's transaction (spoilt by the error: no savepoint is paid
    for) is to be done again without ``straight``. Otherwise rows whose (document, version, ordinal)
    exist are skipped (staging table + ON CONFLICT).
    """
    if not rows:
        return 0

    @functools.lru_cache(maxsize=None)
    def same(document_id, owner_id: int, chunker_version: str) -> bytes:  # one document's rows share these
        return _field(_uuid_bytes(document_id)) + _int4(owner_id) + _field(chunker_version.encode())

    @functools.lru_cache(maxsize=None)
    def headings(path: tuple) -> bytes:  # jsonb's binary form: a version byte, then the JSON text
        return _field(b"\x01" + json.dumps(list(path), ensure_ascii=False).encode())

    def stream():
        return _binary_copy(11, ((
            _field(_uuid_bytes(row.id)), same(row.document_id, row.owner_id, row.chunker_version), _int4(row.ordinal),
            _field(row.text.encode()), _field(row.chunk_sha.encode()), _int4(row.token_count), _int4(row.page_start),
            _int4(row.page_end), headings(tuple(row.heading_path)),
        ) for row in rows))
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


def set_vectors_aside(chunk_ids: list, *, model: str, dimensions: int) -> int:
    """Keep, for the rest of this transaction, the vectors (of this model) of passages about to be
    deleted, so passages that replace them with the same text can have them (``carry_vectors``)."""
    with connection.cursor() as cursor:
        _staging(cursor, "vectors_set_aside", "text_sha text, embedding halfvec")
        cursor.execute(f"INSERT INTO vectors_set_aside SELECT text_sha, embedding FROM {ChunkVector._meta.db_table} "
                       "WHERE chunk_id = ANY(%s::uuid[]) AND model = %s AND dimensions = %s AND text_sha <> ''",
                       [[str(chunk_id) for chunk_id in chunk_ids], model, dimensions])
        return cursor.rowcount


def carry_vectors(to_chunks: dict, *, model: str, dimensions: int) -> int:
    """Give new passages (id -> sha of their embedded text) a vector set aside for the same text in
    this transaction (a re-chunk that shifted ordinals, a reprocess), so it is not paid for again."""
    if not to_chunks:
        return 0
    vectors, chunks = ChunkVector._meta.db_table, Chunk._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {vectors} (chunk_id, owner_id, document_id, model, dimensions, text_sha, embedding) "
            "SELECT c.id, c.owner_id, c.document_id, %s, %s, o.text_sha, o.embedding "
            "FROM unnest(%s::uuid[], %s::text[]) AS n(id, text_sha) "
            f"JOIN {chunks} AS c ON c.id = n.id "
            "JOIN (SELECT DISTINCT ON (text_sha) * FROM vectors_set_aside) AS o ON o.text_sha = n.text_sha "
            "ON CONFLICT (chunk_id) DO NOTHING",
            [model, dimensions, [str(chunk_id) for chunk_id in to_chunks], list(to_chunks.values())])
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
