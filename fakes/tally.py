"""Counts of what the fakes answered and injected, kept in the database across web processes.

A chaos run compares these with a fault-free run: calls made, faults injected, webhooks lost or doubled.
"""
from __future__ import annotations

import functools

from django.db import connection

from fakes.models import FakeRequestTally


def count(service: str, outcome: str, n: int = 1) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FakeRequestTally._meta.db_table} (service, outcome, count) VALUES (%s, %s, %s) "
            "ON CONFLICT (service, outcome) DO UPDATE SET count = EXCLUDED.count + "
            f"{FakeRequestTally._meta.db_table}.count", [service, outcome, n])


def outcome_for_status(status: int) -> str:
    if status == 429:
        return "rate_limited"
    if status == 504:
        return "timeout"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"


def tallied(service: str, view):
    """Wrap a fake's view so every answer is counted by outcome."""
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        count(service, outcome_for_status(response.status_code))
        return response
    return wrapper


def snapshot() -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {}
    for service, outcome, n in FakeRequestTally.objects.values_list("service", "outcome", "count"):
        result.setdefault(service, {})[outcome] = n
    return result


def reset() -> None:
    FakeRequestTally.objects.all().delete()
