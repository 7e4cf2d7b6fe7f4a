"""Request and response shapes of the client API (what the OpenAPI schema shows is what is sent)."""
from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ingestion.models import Chunk, Document, Event, Job
from ingestion.statuses import Status


class StrictCharField(serializers.CharField):
    """A string, and only a string: numbers and booleans are refused, not turned into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON number without a fraction; strings and booleans are refused."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)) or (isinstance(data, float)
                                                                            and not data.is_integer()):
            self.fail("invalid")
        return super().to_internal_value(int(data))


class StrictUUIDField(serializers.UUIDField):
    """A UUID written as a string (DRF would also take an integer)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. PARSE_ENCRYPTED_PDF.")
    message = serializers.CharField(help_text="What went wrong and what to do, for a person.")
    field = serializers.CharField(required=False, help_text="The request field the error is about.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


class LastErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    retryable = serializers.BooleanField(allow_null=True)


class ProgressSerializer(serializers.Serializer):
    stage = serializers.CharField(required=False, help_text="The stage running or last finished.")
    stage_pct = serializers.IntegerField(required=False, min_value=0, max_value=100)
    total_pct = serializers.IntegerField(required=False, min_value=0, max_value=100)


class StageTimeSerializer(serializers.Serializer):
    started = serializers.DateTimeField(required=False)
    finished = serializers.DateTimeField(required=False)
    seconds = serializers.FloatField(required=False)


def _last_error(job: Job | None) -> dict | None:
    if job is None or not job.last_error_code:
        return None
    return {"code": job.last_error_code, "message": job.last_error_message, "retryable": job.last_error_retryable}


# Text already embedded for any member is not paid for again (docs/decisions/0005). What a job paid
# (tokens, provider calls, cost) and how much it reused would tell a member that someone else uploaded
# the same text, so members are not shown them; staff see them in the admin and on the dashboard.
MEMBER_HIDDEN_PAYLOAD_KEYS = frozenset({"reused", "tokens", "provider_calls", "kept"})


class JobSerializer(serializers.ModelSerializer):
    document = serializers.UUIDField(source="document_id", read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    progress = ProgressSerializer(read_only=True)
    stage_times = serializers.DictField(child=StageTimeSerializer(), read_only=True,
                                        help_text="Per stage: when it started and finished, and how long it took.")
    last_error = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = ["id", "document", "status", "start_stage", "attempts", "next_attempt_at", "progress",
                  "stage_times", "last_error", "page_count", "chunk_count", "embed_model", "embed_dimensions",
                  "chunker_version", "created_at", "updated_at", "finished_at"]
        read_only_fields = fields

    @extend_schema_field(LastErrorSerializer(allow_null=True))
    def get_last_error(self, job: Job):
        return _last_error(job)


class DocumentSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    progress = serializers.SerializerMethodField()
    chunk_count = serializers.SerializerMethodField()
    last_error = serializers.SerializerMethodField()
    current_job = JobSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Document
        fields = ["id", "filename", "size", "file_sha256", "page_count", "status", "progress", "chunk_count",
                  "last_error", "current_job", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, document: Document):
        job = document.current_job
        return dict(job.progress) if job else {}

    def get_chunk_count(self, document: Document) -> int:
        counts = self.context.get("chunk_counts")
        if counts is not None:
            return counts.get(document.id, 0)
        return document.chunks.count()

    @extend_schema_field(LastErrorSerializer(allow_null=True))
    def get_last_error(self, document: Document):
        return _last_error(document.current_job)


class UploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text="The PDF; at most UPLOAD_MAX_BYTES "
                                 "(25 MB by default) and UPLOAD_MAX_PAGES pages, not password-protected.")


class UploadResultSerializer(serializers.Serializer):
    document = DocumentSerializer()
    job = JobSerializer(allow_null=True)
    duplicate = serializers.BooleanField(help_text="True when these exact bytes were uploaded before: "
                                         "the existing document is returned and nothing new starts.")
    status_url = serializers.URLField()


class EventSerializer(serializers.ModelSerializer):
    job = serializers.UUIDField(source="job_id", read_only=True)
    payload = serializers.SerializerMethodField()

    @extend_schema_field(serializers.DictField())
    def get_payload(self, event: Event) -> dict:
        return {key: value for key, value in (event.payload or {}).items() if key not in MEMBER_HIDDEN_PAYLOAD_KEYS}

    class Meta:
        model = Event
        fields = ["id", "job", "type", "stage", "code", "severity", "message", "payload", "created_at"]
        read_only_fields = fields


class ChunkSerializer(serializers.ModelSerializer):
    heading_path = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Chunk
        fields = ["id", "ordinal", "text", "token_count", "page_start", "page_end", "heading_path", "chunker_version"]
        read_only_fields = fields


class ReprocessSerializer(serializers.Serializer):
    from_stage = serializers.ChoiceField(choices=["parse", "chunk", "embed"], default="parse",
                                         help_text="parse: everything again; chunk: re-split the stored parse; "
                                         "embed: embed chunks that have no vector.")


class SearchRequestSerializer(serializers.Serializer):
    query = StrictCharField(max_length=2000, trim_whitespace=True)
    k = StrictIntegerField(min_value=1, max_value=50, default=5)
    document_ids = serializers.ListField(child=StrictUUIDField(), required=False, max_length=100,
                                         help_text="Only search these of your documents.")
    mode = serializers.ChoiceField(choices=["hybrid", "vector", "text"], default="hybrid")


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.UUIDField()
    document_id = serializers.UUIDField()
    filename = serializers.CharField()
    page_start = serializers.IntegerField()
    page_end = serializers.IntegerField()
    heading_path = serializers.ListField(child=serializers.CharField())
    text = serializers.CharField(allow_blank=True)
    snippet = serializers.CharField(allow_blank=True)
    score = serializers.FloatField()
    scores = serializers.DictField(child=serializers.FloatField())


class SearchResponseSerializer(serializers.Serializer):
    results = SearchHitSerializer(many=True)


class WebhookResultSerializer(serializers.Serializer):
    result = serializers.ChoiceField(choices=["accepted", "duplicate", "ignored"])
    woke_parse_stage = serializers.BooleanField()


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField(min_length=1, max_length=150)
    password = StrictCharField(min_length=1, max_length=128, style={"input_type": "password"}, trim_whitespace=False)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
