"""Stage 3, chunk: markdown-aware, token-bounded chunks with page spans, inserted in bulk, then
their full-text index entries.

Idempotent: chunk ids are deterministic and conflicting inserts are ignored; chunks of an older
chunker version, beyond the new count, or with other text, pages or section at their ordinal are
removed (their index entries and vectors with them), and a new passage whose embedded text (section
and text) is that of a removed one gets its vector.
"""
from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction

from ingestion import storage
from ingestion.chunking import CHUNKER_VERSION, chunk_markdown
from ingestion.errors import PermanentError
from ingestion.models import Chunk, Job
from ingestion.pipeline.bulk import CONFLICT, carry_vectors, index_chunks, insert_chunks, set_vectors_aside
from ingestion.pipeline.embed import embedded_text_sha
from ingestion.providers.embeddings import active_space


def run(job: Job, ctx) -> dict:
    document = job.document
    rows = passages(document)
    started = time.monotonic()
    try:
        stored, indexed = _store(document, rows, straight=True)
    except CONFLICT:  # another worker wrote some of these passages meanwhile (it held the job before us)
        stored, indexed = _store(document, rows, straight=False)
    return {"chunk_count": len(rows), "chunker_version": CHUNKER_VERSION,
            "_payload": {"chunks": len(rows), "store_seconds": round(stored - started, 4),
                         "index_seconds": round(indexed - stored, 4)}}


def passages(document) -> list[Chunk]:
    """The document's passages (unsaved rows with deterministic ids) from its parsed pages."""
    pages = storage.parsed_pages_read(document.parsed_path)
    drafts = chunk_markdown(pages, max_tokens=settings.CHUNK_MAX_TOKENS, overlap_tokens=settings.CHUNK_OVERLAP_TOKENS)
    if not drafts:
        raise PermanentError("CHUNK_NO_CONTENT", "The parsed document has no text to split into passages. "
                             "Check that the PDF has selectable text.")
    return [Chunk(id=Chunk.make_id(document.id, CHUNKER_VERSION, d.ordinal), document_id=document.id,
                  owner_id=document.owner_id, chunker_version=CHUNKER_VERSION, ordinal=d.ordinal, text=d.text,
                  chunk_sha=d.chunk_sha, token_count=d.token_count, page_start=d.page_start, page_end=d.page_end,
                  heading_path=d.heading_path)
            for d in drafts]


def _store(document, rows: list[Chunk], *, straight: bool) -> tuple[float, float]:
    """Replace what differs, insert what is missing and index it, in one transaction; returns when the
    passages were stored and when they were indexed (monotonic clock)."""
    with transaction.atomic():
        # One look at what is stored: passages of an older chunker version, beyond the new count, or
        # with other text at the same ordinal (a re-chunk with different settings) are replaced.
        existing = Chunk.objects.filter(document_id=document.id).values_list(
            "id", "chunker_version", "ordinal", "chunk_sha", "page_start", "page_end", "heading_path")
        kept, stale = set(), []
        for chunk_id, version, ordinal, sha, page_start, page_end, heading_path in existing:
            # the same text is not enough: after a new parse its pages (citations) or its section (part of
            # what is embedded) may have moved
            if (version == CHUNKER_VERSION and ordinal < len(rows) and rows[ordinal].chunk_sha == sha
                    and (rows[ordinal].page_start, rows[ordinal].page_end) == (page_start, page_end)
                    and list(rows[ordinal].heading_path) == list(heading_path)):
                kept.add(ordinal)
            else:
                stale.append(chunk_id)
        new = [row for row in rows if row.ordinal not in kept]
        if stale:
            space = active_space()
            # their vectors are kept for new passages of the same text (ordinals shifted), not paid again
            kept_vectors = set_vectors_aside(stale, model=space.model, dimensions=space.dimensions)
            Chunk.objects.filter(id__in=stale).delete()  # their index entries and vectors with them
        insert_chunks(new, straight=straight)
        if stale and kept_vectors:
            carry_vectors({row.id: embedded_text_sha(row.text, row.heading_path) for row in new},
                          model=space.model, dimensions=space.dimensions)
        stored = time.monotonic()
        index_chunks(document.id)
    return stored, time.monotonic()
