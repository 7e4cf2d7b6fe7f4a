"""Our health checks for /health/ (django-health-check): migrations, workers, backlog, providers."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from health_check.base import HealthCheck
from health_check.exceptions import ServiceUnavailable
from health_check.views import HealthCheckView

from monitoring import probes, selectors


@dataclasses.dataclass
class MigrationsApplied(HealthCheck):
    def run(self) -> None:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if pending:
            raise ServiceUnavailable(f"{len(pending)} migrations are not applied; run 'python manage.py migrate'.")


@dataclasses.dataclass
class WorkerHeartbeatFresh(HealthCheck):
    """Red when no qcluster runs: no live cluster status in the shared cache, or no recent heartbeat task.

    The cluster status expires 3 s after its sentinel stops, so a stopped qcluster shows within
    seconds; the heartbeat row (a scheduled task a worker ran) proves the workers also execute tasks.
    """

    def run(self) -> None:
        from monitoring.alerts import alerts_evaluate_if_stale

        # The rules' schedule runs inside the qcluster: with every qcluster down, load-balancer and
        # uptime polls of /health/ are what evaluate them, so "no worker" is alerted without a viewer.
        alerts_evaluate_if_stale()
        status = selectors.worker_status()
        if status.last_seen_age is None:
            raise ServiceUnavailable("No qcluster has ever reported; start one with 'python manage.py qcluster'.")
        if not status.clusters:
            raise ServiceUnavailable("No qcluster is running (none has reported its status in the last 3 s); "
                                     "start one with 'python manage.py qcluster'.")
        if status.last_seen_age > settings.HEARTBEAT_MAX_AGE_SECONDS:
            raise ServiceUnavailable(f"The last qcluster heartbeat is {status.last_seen_age:.0f}s old: the cluster "
                                     "runs but executes no scheduled tasks.")


@dataclasses.dataclass
class BacklogAgeUnderThreshold(HealthCheck):
    """Red when the oldest job waiting for a worker has waited longer than BACKLOG_MAX_AGE_SECONDS."""

    def run(self) -> None:
        backlog = selectors.backlog()
        if backlog.oldest_age_seconds is not None and backlog.oldest_age_seconds > settings.BACKLOG_MAX_AGE_SECONDS:
            raise ServiceUnavailable(
                f"The oldest of {backlog.waiting} waiting jobs is {backlog.oldest_age_seconds:.0f}s old (limit "
                f"{settings.BACKLOG_MAX_AGE_SECONDS}s); add workers or look for stuck jobs on /monitoring/.")


@dataclasses.dataclass
class ProviderReachable(HealthCheck):
    provider: str = "openai"
    timeout = datetime.timedelta(seconds=settings.PROVIDER_CHECK_TIMEOUT_SECONDS)

    def run(self) -> None:
        result = probes.provider_probe(self.provider)
        if not result.ok:
            raise ServiceUnavailable(f"{self.provider}: {result.detail}.")


HEALTH_CHECKS = [
    "health_check.checks.Database",
    "health_check.checks.Storage",
    "health_check.checks.Cache",
    MigrationsApplied,
    WorkerHeartbeatFresh,
    BacklogAgeUnderThreshold,
    (ProviderReachable, {"provider": "llamaparse"}),
    (ProviderReachable, {"provider": "openai"}),
]


class ConnectionClosingExecutor(ThreadPoolExecutor):
    """Runs each synchronous check in a pool thread and closes that thread's database connections after it.

    Django closes connections only in the request's own thread; without this every /health/ call
    left its checks' connections open until PostgreSQL ran out of them.
    """

    def submit(self, fn, /, *args, **kwargs):
        def run():
            try:
                return fn(*args, **kwargs)
            finally:
                connections.close_all()

        return super().submit(run)


class HealthView(HealthCheckView):
    checks = HEALTH_CHECKS

    @contextlib.contextmanager
    def get_executor(self):
        with ConnectionClosingExecutor(max_workers=len(HEALTH_CHECKS), thread_name_prefix="health") as executor:
            yield executor
