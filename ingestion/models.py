"""Documents, their processing jobs, chunks and their vectors, the embedding cache and the event log."""
from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex, HashIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from pgvector.django import HalfVectorField

from ingestion.statuses import Status

# Chunk ids are uuid5(document id, chunker version, ordinal) under this namespace, so re-running
# the chunk stage produces the same ids and conflicting inserts are ignored.
CHUNK_ID_NAMESPACE = uuid.UUID("6f1d2c4e-8a7b-4f3e-9c1d-2b5a7e9f0c31")


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="documents")
    filename = models.CharField(max_length=255)
    mime = models.CharField(max_length=100, default="application/pdf")
    size = models.BigIntegerField()
    file_sha256 = models.CharField(max_length=64)
    storage_path = models.CharField(max_length=500)
    parsed_path = models.CharField(max_length=500, blank=True, default="")
    parsed_sha256 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    current_job = models.ForeignKey("Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "file_sha256"], name="document_unique_owner_sha")]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"


class Job(models.Model):
    """One processing run of a document. The row is the truth; queue messages only wake workers."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="jobs")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.UPLOADED, db_index=True)
    start_stage = models.CharField(max_length=16, default="parse")
    attempts = models.PositiveIntegerField(default=0)  # attempts of the current stage
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error_code = models.CharField(max_length=64, blank=True, default="", db_index=True)
    last_error_message = models.TextField(blank=True, default="")
    last_error_retryable = models.BooleanField(null=True, blank=True)
    stage_times = models.JSONField(default=dict, blank=True)  # {"parse": {"started": iso, "finished": iso}}
    progress = models.JSONField(default=dict, blank=True)  # {"stage": "embed", "stage_pct": 40, "total_pct": 73}
    parse_job_id = models.CharField(max_length=100, blank=True, default="")
    webhook_secret = models.CharField(max_length=64, blank=True, default="")  # token of the parser callback URL
    correlation_id = models.UUIDField(default=uuid.uuid4, editable=False)
    chunker_version = models.CharField(max_length=32, blank=True, default="")
    embed_model = models.CharField(max_length=100, blank=True, default="")
    embed_dimensions = models.PositiveIntegerField(null=True, blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    chunk_count = models.PositiveIntegerField(null=True, blank=True)
    tokens_embedded = models.PositiveBigIntegerField(default=0)
    provider_calls = models.PositiveIntegerField(default=0)
    cost_estimate_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @staticmethod
    def new_webhook_secret() -> str:
        """A fresh random token for the parser's callback URL (128 bits; ingestion.webhooks)."""
        return secrets.token_hex(16)

    def __str__(self) -> str:
        return f"job {self.id} ({self.status})"


class Chunk(models.Model):
    id = models.UUIDField(primary_key=True, editable=False)
    # No single-column indexes: (document, chunker_version, ordinal) and (owner, document) serve both.
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    # The document's owner, repeated for member-scoped queries. No database constraint: the document's
    # key already guarantees the owner exists, and each constraint is a check per row in bulk writes.
    # Deleting a member still deletes their passages (Django's cascade).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False,
                              db_constraint=False)
    chunker_version = models.CharField(max_length=32)
    ordinal = models.PositiveIntegerField()
    text = models.TextField()
    chunk_sha = models.CharField(max_length=64)
    token_count = models.PositiveIntegerField()
    page_start = models.PositiveIntegerField()
    page_end = models.PositiveIntegerField()
    heading_path = models.JSONField(default=list, blank=True)
    class Meta:
        ordering = ["document", "ordinal"]
        constraints = [
            models.UniqueConstraint(fields=["document", "chunker_version", "ordinal"], name="chunk_unique_ordinal"),
        ]
        indexes = [models.Index(fields=["owner", "document"], name="chunk_owner_document")]

    @staticmethod
    def make_id(document_id, chunker_version: str, ordinal: int) -> uuid.UUID:
        return uuid.uuid5(CHUNK_ID_NAMESPACE, f"{document_id}:{chunker_version}:{ordinal}")


# How a passage's text becomes its full-text index entry; queries are parsed the same way
# (ingestion.search.query_terms). Slashes read as spaces: PostgreSQL's parser takes "copay/visit" or
# "care/screening/immunization" (the uniform Summary of Benefits writes them everywhere) as one
# file-path token, so "copay" would not match.
SEARCH_VECTOR_SQL = "to_tsvector('english', translate({text}, '/', ' '))"


class ChunkSearch(models.Model):
    """A passage's full-text index entry, in a narrow table of its own.

    Written right after the passages, by one INSERT ... SELECT (ingestion.pipeline.bulk.index_chunks),
    so storing passages and building their full-text index are separate, separately timed writes;
    the text ranking scans only these rows (owner, document, length, tsvector).
    """

    chunk = models.OneToOneField(Chunk, primary_key=True, on_delete=models.CASCADE, related_name="search")
    # The passage's owner and document, repeated; the passage's key is the constraint (see Chunk.owner).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+",
                              db_constraint=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    token_count = models.PositiveIntegerField()
    search_vector = SearchVectorField()

    class Meta:
        indexes = [GinIndex(fields=["search_vector"], name="chunksearch_vector_gin")]

    def __str__(self) -> str:
        return f"full-text entry of {self.chunk_id}"


class ChunkVector(models.Model):
    """A passage's vector, in a narrow table of its own.

    Exact search reads every vector of the member's passages; here they sit two or more to an 8 KB
    page, stored inline (PLAIN, see migration 0006), instead of one wide passage row per page with
    the vector out in TOAST. Vectors are only ever inserted (or replaced when the model changes),
    never written into the wide passage rows. Owner and document are repeated so the scan is
    member-scoped in SQL without touching the passages.

    Each vector is stored once, here: a passage whose text (with its headings) was embedded before
    with the same model, for any document, takes a copy of that vector instead of paying for it again
    (found by ``text_sha``). Deleting a document deletes its vectors with it; none of its text's
    vectors stay behind in a cache.
    """

    chunk = models.OneToOneField(Chunk, primary_key=True, on_delete=models.CASCADE, related_name="vector")
    # The passage's owner and document, repeated; the passage's key is the constraint (see Chunk.owner).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False,
                              db_constraint=False)
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="+", db_constraint=False)
    # halfvec: half the storage of float32, and the distance kernels of the embedded server's pgvector
    # build for `vector` use AVX-512 unconditionally (SIGILL on AVX2-only CPUs); halfvec's do not.
    # No fixed dimension, so vectors of any model fit (1536 from OpenAI, 384 from the local model);
    # the model and size they came from are recorded beside them and searches compare only those.
    model = models.CharField(max_length=100)
    dimensions = models.PositiveIntegerField()
    # sha256 of the text that was embedded (the passage's headings and text, ingestion.pipeline.embed)
    text_sha = models.CharField(max_length=64)
    embedding = HalfVectorField()

    class Meta:
        indexes = [models.Index(fields=["owner", "model", "dimensions"], name="chunkvector_owner_model"),
                   # only ever looked up by equality; a hash entry is a fraction of a btree entry of 64 hex digits
                   HashIndex(fields=["text_sha"], name="chunkvector_text")]

    def __str__(self) -> str:
        return f"{self.model}/{self.dimensions} vector of {self.chunk_id}"


class EmbeddingCache(models.Model):
    """(model, dimensions, text sha) -> vector of a search query: a query asked again is not paid for again.

    Passages need no cache of their own: their vectors are found among the stored ones (ChunkVector.text_sha).
    """

    model = models.CharField(max_length=100)
    dimensions = models.PositiveIntegerField()
    text_sha = models.CharField(max_length=64)
    embedding = HalfVectorField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "dimensions", "text_sha"], name="embedding_cache_key")]


class Event(models.Model):
    """Append-only log of what happened to a job: the timeline in the API and the admin."""

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=40)
    stage = models.CharField(max_length=16, blank=True, default="")
    code = models.CharField(max_length=64, blank=True, default="")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.INFO)
    message = models.TextField(blank=True, default="")
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]


class WorkerHeartbeat(models.Model):
    """One row per qcluster host+process, touched on a schedule: the signal health checks trust."""

    worker = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()


class AuditRecord(models.Model):
    """Who read or deleted a member's document content, when and from where. Written once, never edited.

    Keeps the actor's name and the document's id as plain values, so the record outlives both.
    """

    class Action(models.TextChoices):
        CHUNKS_READ = "chunks_read"
        SEARCH_HITS_READ = "search_hits_read"
        FILE_DOWNLOADED = "file_downloaded"
        DOCUMENT_DELETED = "document_deleted"

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    document_id = models.UUIDField(db_index=True)
    document_owner_id = models.BigIntegerField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)  # ids and counts only, never document text
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_username} {self.action} {self.document_id}"
