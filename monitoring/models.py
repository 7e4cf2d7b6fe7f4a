"""Alerts raised by the rules in monitoring.alerts: one row per incident, open until the rule clears."""
from __future__ import annotations

from django.db import models
from django.db.models import Q


class Alert(models.Model):
    class Rule(models.TextChoices):
        FAILURE_RATE = "failure_rate", "Job failure rate"
        BACKLOG_AGE = "backlog_age", "Backlog age"
        WORKER_HEARTBEAT = "worker_heartbeat", "No worker heartbeat"
        PROVIDER_ERROR_RATE = "provider_error_rate", "Provider error rate"

    class State(models.TextChoices):
        OPEN = "open"
        RESOLVED = "resolved"

    rule = models.CharField(max_length=40, choices=Rule.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN, db_index=True)
    opened_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    message = models.TextField()
    last_evaluated_at = models.DateTimeField()
    notified = models.JSONField(default=list, blank=True)  # delivery outcomes: [{"channel", "ok", "detail", "at"}]

    class Meta:
        ordering = ["-opened_at"]
        # At most one open incident per rule, however many evaluators run at once.
        constraints = [models.UniqueConstraint(fields=["rule"], condition=Q(state="open"), name="alert_one_open_per_rule")]

    def __str__(self) -> str:
        return f"{self.get_rule_display()} ({self.state})"
