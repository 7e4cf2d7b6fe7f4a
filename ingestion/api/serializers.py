from __future__ import annotations

from rest_framework import serializers

from ingestion.models import Chunk, Document, Event, Job


class JobSerializer(serializers.ModelSerializer):
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "document", "status", "start_stage", "attempts", "next_attempt_at", "progress",
                  "stage_times", "last_error", "page_count", "chunk_count", "tokens_embedded", "provider_calls",
                  "cost_estimate_usd", "embed_model", "embed_dimensions", "chunker_version", "created_at",
                  "finished_at"]

    def get_last_error(self, job: Job) -> dict | None:
        if not job.last_error_code:
            return None
        return {"code": job.last_error_code, "message": job.last_error_message, "retryable": job.last_error_retryable}


class DocumentSerializer(serializers.ModelSerializer):
    current_job = JobSerializer(read_only=True)
    chunk_count = serializers.SerializerMethodField()

    class Meta:
        model = Document
        fields = ["id", "filename", "size", "file_sha256", "page_count", "status", "chunk_count", "current_job",
                  "created_at", "updated_at"]

    def get_chunk_count(self, document: Document) -> int | None:
        return document.current_job.chunk_count if document.current_job else None


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "job", "type", "stage", "code", "severity", "message", "payload", "created_at"]


class ChunkSerializer(serializers.ModelSerializer):
    class Meta:
        model = Chunk
        fields = ["id", "ordinal", "text", "token_count", "page_start", "page_end", "heading_path", "chunker_version"]


class SearchRequestSerializer(serializers.Serializer):
    query = serializers.CharField(max_length=2000)
    k = serializers.IntegerField(min_value=1, max_value=50, default=5)
    document_ids = serializers.ListField(child=serializers.UUIDField(), required=False)
    mode = serializers.ChoiceField(choices=["hybrid", "vector", "text"], default="hybrid")


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    filename = serializers.CharField()
    page_start = serializers.IntegerField()
    page_end = serializers.IntegerField()
    heading_path = serializers.ListField(child=serializers.CharField())
    text = serializers.CharField()
    snippet = serializers.CharField()
    score = serializers.FloatField()
    scores = serializers.DictField(child=serializers.FloatField())
