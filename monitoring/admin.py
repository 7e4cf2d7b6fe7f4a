"""Alert history in the admin: read-only, alerts open and resolve only through the rules."""
from django.contrib import admin

from ingestion.admin import ReadOnlyAdmin
from monitoring.models import Alert


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["rule", "state", "opened_at", "resolved_at", "last_value", "threshold", "message"]
    list_filter = ["state", "rule", "opened_at"]
    search_fields = ["message"]
    date_hierarchy = "opened_at"
    readonly_fields = [f.name for f in Alert._meta.fields]

    def has_delete_permission(self, request, obj=None):
        return False  # a deleted open alert would be opened and delivered again at the next evaluation
