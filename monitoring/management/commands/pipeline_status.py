"""python manage.py pipeline_status: the monitoring dashboard's numbers in the terminal."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand
from rich.console import Console
from rich.table import Table

from monitoring import probes, selectors


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


class Command(BaseCommand):
    help = "Show the pipeline's health: workers, backlog, throughput, latency, failures, providers, stuck jobs, cost."

    def add_arguments(self, parser):
        parser.add_argument("--no-probe", action="store_true", help="Do not call the providers to check reachability.")

    def handle(self, *args, **options):
        console = Console(file=self.stdout, width=max(Console().width, 120))
        snap = selectors.snapshot()

        overview = Table(title="Pipeline", show_header=False)
        overview.add_column(style="bold")
        overview.add_column()
        workers = snap.workers
        overview.add_row("qcluster", ("[green]running[/]" if workers.healthy else "[red]DOWN[/]")
                         + f" — {len(workers.clusters)} cluster(s), last heartbeat {_seconds(workers.last_seen_age)} ago")
        over = (snap.backlog.oldest_age_seconds or 0) > settings.BACKLOG_MAX_AGE_SECONDS
        overview.add_row("backlog", f"{snap.backlog.waiting} waiting, {snap.backlog.running} running; oldest "
                         + (f"[red]{_seconds(snap.backlog.oldest_age_seconds)}[/]" if over
                            else _seconds(snap.backlog.oldest_age_seconds)))
        overview.add_row("queue", f"{snap.queue['queued']} messages queued, {snap.queue['in_flight']} in flight")
        overview.add_row("last hour", f"{sum(b.complete for b in snap.per_minute)} complete, "
                         f"{sum(b.failed for b in snap.per_minute)} failed")
        overview.add_row("last 24 h", f"{snap.failures.ended} ended, {snap.failures.failed} failed "
                         f"({snap.failures.rate:.0%}); {snap.dead_lettered} dead-lettered overall")
        overview.add_row("stuck jobs", f"[red]{len(snap.stuck)}[/]" if snap.stuck else "0")
        overview.add_row("cost today", f"${snap.costs[-1].usd:.4f}" if snap.costs else "-")
        alerts = ", ".join(f"[red]{a.get_rule_display()}[/]" for a in snap.open_alerts) or "[green]none[/]"
        overview.add_row("open alerts", alerts)
        console.print(overview)

        statuses = Table(title="Documents and jobs by status")
        statuses.add_column("status")
        statuses.add_column("documents", justify="right")
        statuses.add_column("jobs", justify="right")
        for status, count in snap.documents.items():
            if count or snap.jobs[status]:
                statuses.add_row(status, str(count), str(snap.jobs[status]))
        console.print(statuses)

        latency = Table(title="Stage latency, last 24 h (first start to finish)")
        for column in ("stage", "runs", "p50", "p95", "max"):
            latency.add_column(column, justify="left" if column == "stage" else "right")
        for row in snap.latency:
            latency.add_row(row.stage, str(row.count), _seconds(row.p50), _seconds(row.p95), _seconds(row.max))
        console.print(latency)

        if snap.failures.by_code:
            failures = Table(title="Failures by error code, last 24 h")
            failures.add_column("code")
            failures.add_column("jobs", justify="right")
            for code, count in snap.failures.by_code:
                failures.add_row(code, str(count))
            console.print(failures)

        providers = Table(title="Providers, last hour")
        for column in ("provider", "reachable", "ok calls", "failed", "error rate"):
            providers.add_column(column, justify="left" if column in ("provider", "reachable") else "right")
        for calls in snap.providers:
            if options["no_probe"]:
                reachable = "-"
            else:
                probe = probes.provider_probe(calls.provider)
                reachable = f"[green]yes[/] {probe.detail}" if probe.ok else f"[red]NO[/] {probe.detail}"
            providers.add_row(calls.provider, reachable, str(calls.ok), str(calls.failed), f"{calls.error_rate:.0%}")
        console.print(providers)

        if snap.stuck:
            stuck = Table(title="Stuck jobs")
            for column in ("job", "document", "status", "reason"):
                stuck.add_column(column)
            for item in snap.stuck:
                stuck.add_row(str(item.job.pk), item.job.document.filename, item.job.status, item.reason)
            console.print(stuck)

        if snap.recent_failures:
            recent = Table(title="Recent failures")
            for column in ("job", "document", "status", "code", "message"):
                recent.add_column(column, overflow="fold")
            for job in snap.recent_failures[:10]:
                recent.add_row(str(job.pk), job.document.filename, job.status, job.last_error_code,
                               job.last_error_message[:100])
            console.print(recent)

        cost = Table(title="Estimated cost per day (UTC)")
        for column in ("day", "jobs", "pages parsed", "tokens embedded", "USD"):
            cost.add_column(column, justify="left" if column == "day" else "right")
        for day in snap.costs:
            cost.add_row(day.day.isoformat(), str(day.jobs), str(day.pages), str(day.tokens), f"{day.usd:.4f}")
        console.print(cost)
