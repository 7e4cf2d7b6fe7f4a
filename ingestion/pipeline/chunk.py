"""Stage 3, chunk: markdown-aware, token-bounded chunks with page spans, inserted in bulk, then
their full-text index entries.

Idempotent: chunk ids are deterministic and conflicting inserts are ignored; chunks of an older
chunker version (or beyond the new count) are removed (their index entries and vectors with them).
"""
from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction

from ingestion import storage
from ingestion.chunking import CHUNKER_VERSION, chunk_markdown
from ingestion.errors import PermanentError
from ingestion.models import Chunk, Job
from ingestion.pipeline.bulk import index_chunks, insert_chunks


def run(job: Job, ctx) -> dict:
    document = job.document
    pages = storage.parsed_pages_read(document.parsed_path)
    drafts = chunk_markdown(pages, max_tokens=settings.CHUNK_MAX_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS)
    if not drafts:
        raise PermanentError("CHUNK_NO_CONTENT", "The parsed document has no text to split into passages. "
                             "Check that the PDF has selectable text.")
    rows = [Chunk(id=Chunk.make_id(document.id, CHUNKER_VERSION, d.ordinal), document_id=document.id,
                  owner_id=document.owner_id, chunker_version=CHUNKER_VERSION, ordinal=d.ordinal, text=d.text,
                  chunk_sha=d.chunk_sha, token_count=d.token_count, page_start=d.page_start, page_end=d.page_end,
                  heading_path=d.heading_path)
            for d in drafts]
    started = time.monotonic()
    with transaction.atomic():
        stale = Chunk.objects.filter(document_id=document.id).exclude(chunker_version=CHUNKER_VERSION)
        stale.delete()
        Chunk.objects.filter(document_id=document.id, ordinal__gte=len(rows)).delete()
        # A re-chunk with different settings changes texts at the same ordinals: replace those.
        existing = dict(Chunk.objects.filter(document_id=document.id).values_list("ordinal", "chunk_sha"))
        changed = [row.ordinal for row in rows if row.ordinal in existing and existing[row.ordinal] != row.chunk_sha]
        if changed:
            Chunk.objects.filter(document_id=document.id, ordinal__in=changed).delete()
        kept = {ordinal for ordinal in existing if ordinal not in changed}
        insert_chunks([row for row in rows if row.ordinal not in kept])
        stored = time.monotonic()
        index_chunks(document.id)
    return {"chunk_count": len(rows), "chunker_version": CHUNKER_VERSION,
            "_payload": {"chunks": len(rows), "store_seconds": round(stored - started, 4),
                         "index_seconds": round(time.monotonic() - stored, 4)}}
