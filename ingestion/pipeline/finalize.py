"""Stage 5, finalize: every chunk has a vector; the document is complete. Idempotent (only reads).
Full-text entries need no check: the chunk stage writes them in the transaction that stores the chunks."""
from __future__ import annotations

from ingestion.errors import TransientError
from ingestion.models import Chunk, Job


def run(job: Job, ctx) -> dict:
    from monitoring.selectors import job_cost_estimate  # the one cost rule, shared with the dashboard

    chunks = Chunk.objects.filter(document_id=job.document_id)
    total = chunks.count()
    missing = chunks.filter(vector__isnull=True).count()
    if missing:
        raise TransientError("EMBED_INCOMPLETE", f"{missing} of {total} passages have no vector yet; embedding "
                             "will run again.")
    return {"chunk_count": total, "cost_estimate_usd": job_cost_estimate(job)}
