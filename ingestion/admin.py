"""Operators' view of documents, jobs, chunks and events."""
from django.contrib import admin

from ingestion.models import Chunk, Document, EmbeddingCache, Event, Job


class EventInline(admin.TabularInline):
    model = Event
    extra = 0
    can_delete = False
    fields = ["created_at", "type", "stage", "severity", "code", "message"]
    readonly_fields = fields
    ordering = ["created_at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["filename", "owner", "status", "page_count", "size", "created_at"]
    list_filter = ["status", "created_at"]
    search_fields = ["filename", "id", "file_sha256"]
    list_select_related = ["owner"]
    readonly_fields = [f.name for f in Document._meta.fields]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "document", "status", "attempts", "last_error_code", "chunk_count", "created_at"]
    list_filter = ["status", "last_error_code", "created_at"]
    search_fields = ["id", "document__filename", "parse_job_id"]
    list_select_related = ["document"]
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [EventInline]


@admin.register(Chunk)
class ChunkAdmin(admin.ModelAdmin):
    list_display = ["document", "ordinal", "page_start", "page_end", "token_count"]
    search_fields = ["document__filename", "id", "chunk_sha"]
    list_select_related = ["document"]
    exclude = ["embedding", "search_vector"]
    readonly_fields = ["document", "owner", "chunker_version", "ordinal", "text", "chunk_sha", "token_count",
                       "page_start", "page_end", "heading_path"]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "job", "type", "stage", "severity", "code"]
    list_filter = ["type", "severity", "stage"]
    readonly_fields = [f.name for f in Event._meta.fields]


admin.site.register(EmbeddingCache, list_display=["model", "dimensions", "text_sha", "created_at"],
                    exclude=["embedding"])


from ingestion import admin_audit  # noqa: E402,F401  (registers the read-only audit trail)
