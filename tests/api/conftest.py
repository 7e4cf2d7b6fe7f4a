"""API fixtures: token-authenticated clients for two members, stored files under a temporary root."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from ingestion import services
from ingestion.models import Chunk, ChunkVector, Document, Job
from ingestion.pipeline.bulk import index_chunks
from ingestion.statuses import Status


@pytest.fixture(autouse=True)
def api_settings(request, settings, tmp_path):
    """Stored files go to a fresh directory per test; throttle counters (in the database cache) start at zero."""
    settings.MEDIA_ROOT = tmp_path / "files"
    # Password hashing is deliberately slow; the API's tests check who gets in, not the hasher.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    names = request.fixturenames
    if "transactional_db" in names or "live_server" in names:
        request.getfixturevalue("transactional_db")
        cache.clear()  # a flush between transactional tests leaves the cache table alone
    elif "db" in names or request.node.get_closest_marker("django_db"):
        request.getfixturevalue("db")
    return settings


@pytest.fixture
def stored_files(api_settings):
    """Every file under the storage root, as relative paths."""
    root = Path(api_settings.MEDIA_ROOT)
    return lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def api(member):
    return client_for(member)


@pytest.fixture
def api_b(other_member):
    return client_for(other_member)


def make_complete(document: Document, texts: list[str]) -> list[Chunk]:
    """Give an uploaded document stored chunks (with vectors) and mark its job complete, as the pipeline would."""
    job = document.current_job
    chunks = [Chunk(id=Chunk.make_id(document.id, "test", i), document=document, owner=document.owner,
                    chunker_version="test", ordinal=i, text=text, chunk_sha=hashlib.sha256(text.encode()).hexdigest(),
                    token_count=len(text.split()), page_start=i + 1, page_end=i + 1,
                    heading_path=["Section 1", f"Part {i}"])
              for i, text in enumerate(texts)]
    Chunk.objects.bulk_create(chunks)
    index_chunks(document.id)
    ChunkVector.objects.bulk_create([ChunkVector(chunk=chunk, owner=document.owner, document=document,
                                                 model="text-embedding-3-small", dimensions=1536, text_sha=chunk.chunk_sha,
                                                 embedding=[0.01 * (i + 1)] * 1536) for i, chunk in enumerate(chunks)])
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETE, chunk_count=len(chunks), finished_at=timezone.now(),
                                         progress={"stage": "finalize", "stage_pct": 100, "total_pct": 100})
    Document.objects.filter(pk=document.pk).update(status=Status.COMPLETE, parsed_path="parsed/test.json")
    document.refresh_from_db()
    return chunks


CHUNK_TEXTS = ["The annual deductible is 3500 dollars for in-network care.",
               "Emergency room visits are covered after a 250 dollar copay.",
               "Prior authorization is required for imaging such as MRI scans."]


@pytest.fixture
def complete_document(member, pdf_bytes):
    """Member A's processed document with three chunks."""
    document = services.document_upload(owner=member, data=pdf_bytes, filename="a-policy.pdf").document
    make_complete(document, CHUNK_TEXTS)
    return document
