"""Query parameters of the document list: status and creation time (django-filter)."""
from __future__ import annotations

from datetime import timedelta

import django_filters
from django import forms

from ingestion.models import Document
from ingestion.statuses import Status


# Real time zones lie within UTC-12 and UTC+14; PostgreSQL refuses offsets much beyond that.
MAX_UTC_OFFSET = timedelta(hours=14)


class StrictFilterForm(forms.Form):
    """A parameter given with no value is an error, not "no filter" (a client sent something it meant)."""

    def clean(self):
        cleaned = super().clean()
        for name in self.fields:
            values = self.data.getlist(name) if hasattr(self.data, "getlist") else []
            if values and all(value == "" for value in values):
                self.add_error(name, "Give a value, or leave the parameter out.")
            value = cleaned.get(name)
            offset = value.utcoffset() if hasattr(value, "utcoffset") else None
            if offset is not None and abs(offset) > MAX_UTC_OFFSET:
                self.add_error(name, "Use a time zone offset between -14:00 and +14:00 (or Z for UTC).")
        return cleaned


class DocumentFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Status.choices,
                                                 help_text="Only documents in this status (repeat for several).")
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte",
                                                     help_text="ISO 8601 date-time; documents created at or after it.")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt",
                                                      help_text="ISO 8601 date-time; documents created before it.")

    class Meta:
        model = Document
        fields = ["status", "created_after", "created_before"]
        form = StrictFilterForm
