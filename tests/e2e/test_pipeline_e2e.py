"""End to end: a real qcluster process and a real HTTP server with the fakes; upload through the API."""
from __future__ import annotations

import time

import httpx
import pytest
from rest_framework.authtoken.models import Token

from ingestion.chunking import chunk_markdown
from ingestion.models import Chunk, Document
from ingestion.providers.pdf_text import pdf_to_markdown_pages
from samples.generate import build_document
from tests.clusters import QCluster

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def qcluster(providers, tmp_path):
    cluster = QCluster(providers.url, tmp_path / "qcluster.log").start()
    yield cluster.process
    cluster.stop()
    print(cluster.log_tail())


def test_uploaded_pdf_is_processed_by_a_real_qcluster(qcluster, providers, member, settings, request):
    # given a member with an API token and a generated 6-page PDF
    token = Token.objects.create(user=member)
    data = build_document(6, seed=7)
    expected = len(chunk_markdown(pdf_to_markdown_pages(data), max_tokens=settings.CHUNK_MAX_TOKENS,
                                  overlap_tokens=settings.CHUNK_OVERLAP_TOKENS))
    client = httpx.Client(base_url=providers.url, headers={"Authorization": f"Token {token.key}"}, timeout=30)
    # a kept-alive connection would hold a live-server thread (and its database session) past the test
    request.addfinalizer(client.close)
    # when it is uploaded through the API
    response = client.post("/api/v1/documents/", files={"file": ("policy.pdf", data, "application/pdf")})
    assert response.status_code == 201, response.text
    document_id = response.json()["document"]["id"]
    status = None
    for _ in range(120):  # bounded: at most 60 s, polling twice a second (within the API's poll limit)
        status = client.get(f"/api/v1/documents/{document_id}/").json()["status"]
        if status in ("complete", "failed_parse", "failed_chunking", "failed_embedding"):
            break
        time.sleep(0.5)
    # then the cluster took it through every stage
    assert status == "complete", qcluster.poll()
    document = Document.objects.get(pk=document_id)
    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() == expected == document.current_job.chunk_count
    assert not chunks.filter(vector__isnull=True).exists() and not chunks.filter(search__isnull=True).exists()
    # and a search finds a passage of it with its page
    hits = client.post("/api/v1/search/", json={"query": "grace period premiums", "k": 3}).json()["results"]
    assert hits and hits[0]["document_id"] == document_id and hits[0]["page_start"] >= 1
