"""Fixtures for search tests: members whose documents went through the real pipeline against the fakes."""
from __future__ import annotations

import pytest

from ingestion import services
from ingestion.pipeline.runner import run_job_sync
from samples.generate import build_document


def ingest(owner, data: bytes, filename: str):
    result = services.document_upload(owner=owner, data=data, filename=filename)
    run_job_sync(result.job.id)
    result.document.refresh_from_db()
    return result.document


@pytest.fixture
def ingested(providers, member, other_member, settings):
    """member owns a 4-page policy; other_member owns a different one; both complete."""
    settings.PARSER_BACKEND = "local"
    mine = ingest(member, build_document(4, seed=0), "my-policy.pdf")
    theirs = ingest(other_member, build_document(4, seed=5), "their-policy.pdf")
    assert mine.status == "complete" and theirs.status == "complete"
    return mine, theirs
