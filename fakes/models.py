"""State of the fakes, kept in the database so several web processes serve the same jobs."""
from __future__ import annotations

import uuid

from django.db import models


class FakeParseJob(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=10, default="PENDING")  # PENDING | SUCCESS | ERROR | CANCELED
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
    # Drawn at upload from the faults then in force: the job's fate does not depend on who finishes it.
    planned_error_code = models.CharField(max_length=64, blank=True, default="")
    planned_cancel = models.BooleanField(default=False)  # the service cancels it (status CANCELED)
    webhook_copies = models.PositiveSmallIntegerField(default=1)  # 0: dropped, 2: duplicated
    is_cache_hit = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class FaultSettings(models.Model):
    """Faults injected by the fakes, one row per fake ("llamaparse", "openai"), changeable at run time."""

    service = models.CharField(max_length=20, unique=True)
    config = models.JSONField(default=dict, blank=True)
    # Requests drawn from the seeded sequence since the knobs last changed (see fakes.faults).
    draws = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)


class FakeRequest(models.Model):
    """One request a fake received and what it did with it: the record tests and operators watch.

    The LlamaParse fake also logs each finished job's webhook here (method ``WEBHOOK``, the target
    URL as path, outcome ``webhook_sent`` or ``webhook_dropped``).
    """

    service = models.CharField(max_length=20)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    # ok | unauthorized | timeout | rate_limited | server_error | malformed | webhook_sent | webhook_dropped
    outcome = models.CharField(max_length=20)
    status = models.PositiveSmallIntegerField(null=True)  # null while a hanging request still hangs
    delay_ms = models.FloatField(default=0.0)
    sequence = models.BigIntegerField(null=True)  # the seeded sequence number, when a seed is set
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["service", "-id"])]
