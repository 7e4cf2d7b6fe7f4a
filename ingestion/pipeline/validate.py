"""Stage 2, validate: parsed content is non-empty and sane; its hash is recorded; parsed-content dedup.

Idempotent: recomputes the same hash from the same stored pages.
"""
from __future__ import annotations

import hashlib

from django.conf import settings

from ingestion import storage
from ingestion.errors import PermanentError
from ingestion.models import Document, Job
from ingestion.statuses import Status


def run(job: Job, ctx) -> dict:
    document = job.document
    pages = storage.parsed_pages_read(document.parsed_path)
    if not pages or not any(page.strip() for page in pages):
        raise PermanentError("PARSE_NO_TEXT", "No text could be read from the PDF (it may be a scan without a text "
                             "layer). Upload a PDF with selectable text, or run it through OCR first.")
    if len(pages) > settings.UPLOAD_MAX_PAGES:
        raise PermanentError("UPLOAD_TOO_MANY_PAGES", f"The parsed document has {len(pages)} pages; the limit is "
                             f"{settings.UPLOAD_MAX_PAGES}. Upload the relevant part as a separate PDF.")
    parsed_sha = hashlib.sha256("\n---\n".join(pages).encode()).hexdigest()
    Document.objects.filter(pk=document.pk).update(parsed_sha256=parsed_sha)
    original = (Document.objects.filter(owner_id=document.owner_id, parsed_sha256=parsed_sha, status=Status.COMPLETE)
                .exclude(pk=document.pk).order_by("created_at").first())
    if original is not None:
        ctx.event("duplicate_content", message=f"The same content is already in '{original.filename}'.",
                  payload={"original_document_id": str(original.pk)})
        return {"_status": Status.DUPLICATE}
    return {"page_count": len(pages)}
