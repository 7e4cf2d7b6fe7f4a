"""Staff view of the audit trail: read-only for everyone, superusers included."""
from django.contrib import admin

from ingestion.admin import ReadOnlyAdmin
from ingestion.models import AuditRecord


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_username", "action", "document_id", "ip_address"]
    list_filter = ["action", "created_at"]
    search_fields = ["actor_username", "document_id", "ip_address"]
    date_hierarchy = "created_at"
    readonly_fields = [field.name for field in AuditRecord._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False
