"""State of the fakes, kept in the database so several web processes serve the same jobs."""
from __future__ import annotations

import uuid

from django.db import models


class FakeParseJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=10, default="PENDING")  # PENDING | SUCCESS | ERROR
    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    file_name = models.CharField(max_length=255)
    file_path = models.CharField(max_length=500)
    file_sha256 = models.CharField(max_length=64)
    options = models.JSONField(default=dict, blank=True)
    webhook_url = models.CharField(max_length=1000, blank=True, default="")
    pages = models.JSONField(default=list, blank=True)  # [{"page": 1, "text": ..., "md": ...}]
    ready_at = models.DateTimeField()
    webhook_deliveries = models.PositiveIntegerField(default=0)
    # The key the caller asked us to sign its webhooks with; empty: the configured default key.
    webhook_secret = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)


class FaultSettings(models.Model):
    """Faults injected by the fakes, one row per fake ("llamaparse", "openai"), changeable at run time."""

    service = models.CharField(max_length=20, unique=True)
    config = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
