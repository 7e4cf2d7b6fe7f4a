"""Health checks beyond the database and storage: migrations applied, a qcluster alive."""
from __future__ import annotations

import dataclasses
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable


@dataclasses.dataclass
class MigrationsApplied(HealthCheck):
    def run(self) -> None:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            raise ServiceUnavailable(f"{len(pending)} migrations are not applied; run 'python manage.py migrate'.")


@dataclasses.dataclass
class WorkerHeartbeatFresh(HealthCheck):
    """Red when no qcluster has written a heartbeat recently: documents would wait for ever."""

    def run(self) -> None:
        from ingestion.models import WorkerHeartbeat

        limit = timezone.now() - timedelta(seconds=settings.HEARTBEAT_MAX_AGE_SECONDS)
        latest = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
        if latest is None:
            raise ServiceUnavailable("No qcluster has ever reported; start one with 'python manage.py qcluster'.")
        if latest < limit:
            age = int((timezone.now() - latest).total_seconds())
            raise ServiceUnavailable(f"The last qcluster heartbeat is {age}s old; the workers are down.")


HEALTH_CHECKS = [
    "health_check.checks.Database",
    "health_check.checks.Storage",
    "health_check.checks.Cache",
    MigrationsApplied,
    WorkerHeartbeatFresh,
]
