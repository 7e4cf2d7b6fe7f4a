"""What the fakes answered and injected since a moment, read from their request log.

A chaos run or a benchmark compares these with a fault-free run: calls made, faults injected,
webhooks lost or doubled.
"""
from __future__ import annotations

from datetime import datetime

from django.db.models import Count

from fakes.models import FakeParseJob, FakeRequest

INJECTED = ("timeout", "rate_limited", "server_error", "malformed")


def snapshot(since: datetime) -> dict[str, dict[str, int]]:
    """``{service: {outcome: count}}`` of requests received since ``since``, plus the parse jobs the
    LlamaParse fake was told to fail (``parse_error_injected``) or whose webhook it doubled
    (``webhook_duplicated``)."""
    result: dict[str, dict[str, int]] = {}
    for row in (FakeRequest.objects.filter(created_at__gte=since).values("service", "outcome")
                .annotate(n=Count("id"))):
        result.setdefault(row["service"], {})[row["outcome"]] = row["n"]
    jobs = FakeParseJob.objects.filter(created_at__gte=since)
    parse = result.setdefault("llamaparse", {})
    parse["parse_error_injected"] = jobs.exclude(planned_error_code="").count()
    parse["webhook_duplicated"] = jobs.filter(webhook_copies=2).count()
    return result


def provider_calls(counts: dict[str, dict[str, int]]) -> int:
    """API requests made to the providers (webhooks the fake sent are not calls)."""
    skip = {"webhook_sent", "webhook_dropped", "parse_error_injected", "webhook_duplicated"}
    return sum(n for outcomes in counts.values() for outcome, n in outcomes.items() if outcome not in skip)


def faults_injected(counts: dict[str, dict[str, int]]) -> int:
    return sum(outcomes.get(name, 0) for outcomes in counts.values() for name in INJECTED) + counts.get(
        "llamaparse", {}).get("parse_error_injected", 0)
