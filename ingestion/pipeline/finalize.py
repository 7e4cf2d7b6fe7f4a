"""Stage 5, finalize: every chunk has a vector; the document is complete. Idempotent (only reads)."""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from ingestion.errors import TransientError
from ingestion.models import Chunk, Job


def run(job: Job, ctx) -> dict:
    chunks = Chunk.objects.filter(document_id=job.document_id)
    total = chunks.count()
    missing = chunks.filter(embedding__isnull=True).count()
    if missing:
        raise TransientError("EMBED_INCOMPLETE", f"{missing} of {total} passages have no vector yet; embedding "
                             "will run again.")
    pages = job.page_count or job.document.page_count or 0
    cost = (Decimal(str(settings.PARSE_PRICE_PER_PAGE_USD)) * pages
            + Decimal(str(settings.EMBED_PRICE_PER_MILLION_TOKENS_USD)) * job.tokens_embedded / Decimal(1_000_000))
    return {"chunk_count": total, "cost_estimate_usd": cost.quantize(Decimal("0.000001"))}
