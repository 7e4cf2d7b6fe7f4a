"""Stage 5, finalize: every chunk has a vector; the document is complete. Idempotent (only reads).
Full-text entries need no check: the chunk stage writes them in the transaction that stores the chunks.

Passages without a vector here were written after the embed stage looked (a worker that lost its lease
finishing late): the job goes back to the embed stage, which embeds only those, at most
JOB_MAX_ATTEMPTS times."""
from __future__ import annotations

from django.conf import settings

from ingestion.errors import PermanentError
from ingestion.models import Chunk, Event, Job
from ingestion.statuses import Status


def run(job: Job, ctx) -> dict:
    from monitoring.selectors import job_cost_estimate  # the one cost rule, shared with the dashboard

    chunks = Chunk.objects.filter(document_id=job.document_id)
    total = chunks.count()
    missing = chunks.filter(vector__isnull=True).count()
    if missing:
        sent_back = Event.objects.filter(job=job, type="embed_again").count()
        if sent_back >= settings.JOB_MAX_ATTEMPTS:
            raise PermanentError("EMBED_INCOMPLETE", f"{missing} of {total} passages still have no vector after "
                                 f"embedding ran again {sent_back} times. Reprocess the document from the chunk "
                                 "stage; if it persists, report the job id to engineering.")
        ctx.event("embed_again", message=f"{missing} of {total} passages have no vector; embedding runs again.",
                  payload={"missing": missing})
        return {"_status": Status.EMBEDDING_QUEUED, "_then": "embed", "_payload": {"missing": missing}}
    return {"chunk_count": total, "cost_estimate_usd": job_cost_estimate(job)}
