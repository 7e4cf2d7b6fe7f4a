"""django-q2 entry points of monitoring (scheduled by migration 0002_alert_schedule)."""
from __future__ import annotations

from monitoring.alerts import alerts_evaluate


def evaluate_alerts() -> dict[str, str]:
    return alerts_evaluate()
