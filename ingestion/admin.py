"""Operators' view of documents, jobs, chunks and events, with actions that call the services.

Rows are written only by the pipeline: these pages read, and their actions (retry, reprocess from a
stage, cancel, delete a document) go through ingestion.services like every other write. List pages
fetch their related rows in the same query (list_select_related), so a page costs the same few
queries whatever its length.
"""
from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from ingestion import audit, services
from ingestion.errors import PipelineError
from ingestion.models import AuditRecord, Chunk, ChunkVector, Document, EmbeddingCache, Event, Job
from monitoring.selectors import job_cost_estimate


def _age(value) -> str:
    return timesince(value, timezone.now()).split(",")[0] if value else "–"


def _run_service(modeladmin, request, items, action, verb: str) -> None:
    """Apply ``action`` to each item; report successes once and every refusal with its code."""
    done = 0
    for item in items:
        try:
            action(item)
            done += 1
        except PipelineError as error:
            modeladmin.message_user(request, f"{item}: {error.code} — {error.message}", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{verb} {done} item(s).", messages.SUCCESS)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows change only through the pipeline and the actions below, never through a form."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class EventInline(admin.TabularInline):
    model = Event
    extra = 0
    can_delete = False
    fields = ["created_at", "type", "stage", "severity", "code", "message", "payload"]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    verbose_name_plural = "Timeline"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ErrorCodeFilter(admin.SimpleListFilter):
    """The error codes that occur, not a fixed list: codes come from providers and stages."""

    title = "error code"
    parameter_name = "error_code"
    field = "last_error_code"

    def lookups(self, request, model_admin):
        codes = (Job.objects.exclude(last_error_code="").order_by("last_error_code")
                 .values_list("last_error_code", flat=True).distinct())
        return [(code, code) for code in codes]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class DocumentErrorCodeFilter(ErrorCodeFilter):
    field = "current_job__last_error_code"


def _reprocess_action(stage: str):
    def action(modeladmin, request, queryset):
        documents = list({d.pk: d for d in (item.document if isinstance(item, Job) else item for item in queryset)}.values())
        _run_service(modeladmin, request, documents,
                     lambda document: services.job_start(document=document, from_stage=stage),
                     f"Reprocessing from {stage}:")

    action.__name__ = f"reprocess_from_{stage}"
    action.short_description = f"Reprocess from the {stage} stage (new job)"
    return action


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ["filename", "owner", "status", "page_count", "chunks", "attempts", "error_code", "size_kb",
                    "age", "current_job_link"]
    list_filter = ["status", DocumentErrorCodeFilter, ("owner", admin.RelatedOnlyFieldListFilter), "created_at"]
    search_fields = ["filename", "=id", "file_sha256", "parsed_sha256", "owner__username"]
    list_select_related = ["owner", "current_job"]
    date_hierarchy = "created_at"
    list_per_page = 50
    readonly_fields = [f.name for f in Document._meta.fields]
    actions = ["retry_current_job", "cancel_current_job", _reprocess_action("parse"), _reprocess_action("chunk"),
               _reprocess_action("embed")]

    @admin.display(description="chunks", ordering="current_job__chunk_count")
    def chunks(self, obj):
        return obj.current_job.chunk_count if obj.current_job else None

    @admin.display(description="attempts")
    def attempts(self, obj):
        return obj.current_job.attempts if obj.current_job else None

    @admin.display(description="last error", ordering="current_job__last_error_code")
    def error_code(self, obj):
        return (obj.current_job.last_error_code or "") if obj.current_job else ""

    @admin.display(description="KB", ordering="size")
    def size_kb(self, obj):
        return f"{obj.size / 1024:.0f}"

    @admin.display(description="age", ordering="created_at")
    def age(self, obj):
        return _age(obj.created_at)

    @admin.display(description="job")
    def current_job_link(self, obj):
        if not obj.current_job_id:
            return "–"
        return format_html('<a href="{}">{}</a>', reverse("admin:ingestion_job_change", args=[obj.current_job_id]),
                           str(obj.current_job_id)[:8])

    @admin.action(description="Retry the current job from the stage that failed")
    def retry_current_job(self, request, queryset):
        jobs = [document.current_job for document in queryset if document.current_job]
        _run_service(self, request, jobs, lambda job: services.job_retry(job=job), "Retried")

    @admin.action(description="Cancel the current job")
    def cancel_current_job(self, request, queryset):
        jobs = [document.current_job for document in queryset if document.current_job]
        _run_service(self, request, jobs, lambda job: services.job_cancel(job=job), "Cancelled")

    def get_deleted_objects(self, objs, request):
        # A document takes its jobs, passages and events with it (services.document_delete); their own
        # admins refuse deleting them one by one, which must not block deleting the document.
        deleted, counts, _perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        _delete_audited(request, obj)

    def delete_queryset(self, request, queryset):
        for document in queryset:
            _delete_audited(request, document)


def _delete_audited(request, document: Document) -> None:
    services.document_delete_audited(document=document, actor=request.user,
                                     client=audit.ClientInfo.from_request(request), via="admin")


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = ["short_id", "document_link", "owner", "status", "stage_progress", "attempts", "last_error_code",
                    "page_count", "chunk_count", "cost", "age"]
    list_filter = ["status", ErrorCodeFilter, "start_stage", ("document__owner", admin.RelatedOnlyFieldListFilter),
                   "created_at"]
    search_fields = ["=id", "=document__id", "document__filename", "document__file_sha256", "parse_job_id",
                     "=correlation_id"]
    list_select_related = ["document", "document__owner"]
    date_hierarchy = "created_at"
    list_per_page = 50
    readonly_fields = ["cost_estimate", *[f.name for f in Job._meta.fields if f.name != "webhook_secret"]]
    fieldsets = [
        (None, {"fields": ["id", "document", "status", "start_stage", "progress", "attempts"]}),
        ("Last error", {"fields": ["last_error_code", "last_error_message", "last_error_retryable"]}),
        ("Worker lease and retry", {"fields": ["lease_owner", "lease_expires_at", "next_attempt_at", "parse_job_id"]}),
        ("Counts and cost", {"fields": ["page_count", "chunk_count", "tokens_embedded", "provider_calls",
                                        "cost_estimate", "cost_estimate_usd"]}),
        ("Times", {"fields": ["created_at", "updated_at", "finished_at", "stage_times"]}),
        ("Versions", {"classes": ["collapse"], "fields": ["chunker_version", "embed_model", "embed_dimensions",
                                                          "correlation_id"]}),
    ]
    inlines = [EventInline]
    actions = ["retry", "cancel", _reprocess_action("parse"), _reprocess_action("chunk"), _reprocess_action("embed")]

    def has_delete_permission(self, request, obj=None):
        return False  # a job's history stays; delete the document to remove everything

    @admin.display(description="job", ordering="id")
    def short_id(self, obj):
        return str(obj.id)[:8]

    @admin.display(description="document", ordering="document__filename")
    def document_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:ingestion_document_change", args=[obj.document_id]),
                           obj.document.filename)

    @admin.display(description="owner", ordering="document__owner__username")
    def owner(self, obj):
        return obj.document.owner.get_username()

    @admin.display(description="stage")
    def stage_progress(self, obj):
        if not obj.progress:
            return "–"
        return f"{obj.progress.get('stage', '')} {obj.progress.get('total_pct', 0)}%"

    @admin.display(description="cost USD")
    def cost(self, obj):
        return f"{job_cost_estimate(obj):.4f}"

    @admin.display(description="estimated cost (USD)")
    def cost_estimate(self, obj):
        return job_cost_estimate(obj)

    @admin.display(description="age", ordering="created_at")
    def age(self, obj):
        return _age(obj.created_at)

    @admin.action(description="Retry (new job from the stage that failed)")
    def retry(self, request, queryset):
        _run_service(self, request, queryset, lambda job: services.job_retry(job=job), "Retried")

    @admin.action(description="Cancel")
    def cancel(self, request, queryset):
        _run_service(self, request, queryset, lambda job: services.job_cancel(job=job), "Cancelled")


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyAdmin):
    list_display = ["document", "ordinal", "page_start", "page_end", "token_count", "has_vector", "chunker_version"]
    list_filter = ["chunker_version"]
    search_fields = ["=id", "=document__id", "document__filename", "chunk_sha"]
    list_select_related = ["document"]
    list_per_page = 100
    readonly_fields = ["document", "owner", "chunker_version", "ordinal", "text", "chunk_sha", "token_count",
                       "page_start", "page_end", "heading_path"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            vector_present=Exists(ChunkVector.objects.filter(chunk=OuterRef("pk"))))

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A passage's page shows its text: a read of document content, recorded like the API's."""
        response = super().change_view(request, object_id, form_url, extra_context)
        chunk = Chunk.objects.filter(pk=object_id).values("document_id", "owner_id").first()
        if chunk and response.status_code == 200:
            audit.audit_record(actor=request.user, action=AuditRecord.Action.CHUNKS_READ,
                               document_id=chunk["document_id"], document_owner_id=chunk["owner_id"],
                               client=audit.ClientInfo.from_request(request),
                               detail={"via": "admin", "chunk_ids": [str(object_id)]})
        return response

    @admin.display(description="vector", boolean=True, ordering="vector_present")
    def has_vector(self, obj):
        return obj.vector_present


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "job_link", "document", "type", "stage", "severity", "code", "short_message"]
    list_filter = ["severity", "type", "stage", "code", "created_at"]
    search_fields = ["=job__id", "=document__id", "document__filename", "code", "message"]
    list_select_related = ["document", "job"]
    date_hierarchy = "created_at"
    list_per_page = 100
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False  # the event log is append-only

    @admin.display(description="job", ordering="job_id")
    def job_link(self, obj):
        return format_html('<a href="{}">{}</a>', reverse("admin:ingestion_job_change", args=[obj.job_id]),
                           str(obj.job_id)[:8])

    @admin.display(description="message")
    def short_message(self, obj):
        return obj.message[:120]


@admin.register(EmbeddingCache)
class EmbeddingCacheAdmin(ReadOnlyAdmin):
    list_display = ["model", "dimensions", "text_sha", "created_at"]
    exclude = ["embedding"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("embedding")


from ingestion import admin_audit  # noqa: E402,F401  (registers the read-only audit trail)
