"""Every number the dashboard, /metrics, the alert rules and `pipeline_status` show, read from the database.

Workers are separate processes, so nothing here keeps counters in memory: job rows and the append-only
event log are the record, and each figure is one aggregate query over them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Coalesce, TruncDate, TruncHour, TruncMinute
from django.utils import timezone

from ingestion.models import Document, Event, Job, WorkerHeartbeat
from ingestion.statuses import FAILED, STAGE_ORDER, TERMINAL, Status

# Error codes raised when a provider call itself failed (not the document), by provider.
PROVIDER_ERROR_CODES = {
    "llamaparse": ("PARSE_PROVIDER_TIMEOUT", "PARSE_PROVIDER_UNAVAILABLE", "PARSE_PROVIDER_UNREACHABLE",
                   "PARSE_RATE_LIMITED", "PARSE_PROVIDER_ERROR", "PARSE_PROVIDER_AUTH", "PARSE_PROVIDER_REJECTED",
                   "PARSE_PROVIDER_MALFORMED", "PARSE_JOB_FAILED", "PARSE_JOB_CANCELLED", "PARSE_TIMEOUT"),
    "openai": ("EMBED_RATE_LIMITED", "EMBED_PROVIDER_TIMEOUT", "EMBED_PROVIDER_UNAVAILABLE", "EMBED_PROVIDER_ERROR",
               "EMBED_PROVIDER_AUTH", "EMBED_PROVIDER_REJECTED", "EMBED_PROVIDER_MALFORMED", "EMBED_QUOTA_EXCEEDED"),
}
# The stage whose successful runs count a provider's calls.
PROVIDER_STAGE = {"llamaparse": "parse", "openai": "embed"}
# Upper bounds (seconds) of the stage-duration histogram buckets: sub-second local stages up to
# many-minute parses of 500-page documents.
STAGE_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
WAITING_STATUSES = [s for s in Status.values if s not in TERMINAL]


# --- Counts ------------------------------------------------------------------------------------

def documents_by_status() -> dict[str, int]:
    """Every status of the vocabulary with its document count (zeros included, in pipeline order)."""
    counts = dict(Document.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in Status.values}


def jobs_by_status() -> dict[str, int]:
    counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
    return {status: counts.get(status, 0) for status in Status.values}


# --- Throughput --------------------------------------------------------------------------------

@dataclass
class ThroughputBucket:
    start: datetime
    complete: int
    failed: int


def throughput(*, bucket: str = "minute", buckets: int = 60, now: datetime | None = None) -> list[ThroughputBucket]:
    """Jobs completed and failed per minute (or hour), oldest bucket first, empty buckets included."""
    now = now or timezone.now()
    step = timedelta(minutes=1) if bucket == "minute" else timedelta(hours=1)
    trunc = TruncMinute if bucket == "minute" else TruncHour
    current = now.replace(second=0, microsecond=0) if bucket == "minute" else now.replace(minute=0, second=0,
                                                                                            microsecond=0)
    first = current - step * (buckets - 1)
    rows = (Job.objects.order_by().filter(finished_at__gte=first, status__in=[Status.COMPLETE, *FAILED])
            .annotate(slot=trunc("finished_at")).values("slot")
            .annotate(complete=Count("id", filter=Q(status=Status.COMPLETE)),
                      failed=Count("id", filter=Q(status__in=FAILED))))
    by_slot = {row["slot"]: row for row in rows}
    result = []
    for index in range(buckets):
        start = first + step * index
        row = by_slot.get(start, {})
        result.append(ThroughputBucket(start, row.get("complete", 0), row.get("failed", 0)))
    return result


# --- Stage latency -----------------------------------------------------------------------------

# One row per (job, stage) that finished: first start (retries and parser waits included) to finish.
# Written in SQL because the ORM would repeat a correlated subquery inside every aggregate (ten times
# slower on 50k events); this way each event row is read once.
STAGE_RUNS_SQL = f"""
    SELECT stage, EXTRACT(EPOCH FROM finished - started) AS seconds
    FROM (SELECT job_id, stage,
                 min(created_at) FILTER (WHERE type = 'stage_started') AS started,
                 max(created_at) FILTER (WHERE type = 'stage_finished') AS finished
          FROM {Event._meta.db_table}
          WHERE type IN ('stage_started', 'stage_finished') {{job_filter}}
          GROUP BY job_id, stage) AS per_job
    WHERE started IS NOT NULL AND finished IS NOT NULL {{finished_filter}}
"""


def _stage_runs_query(since: datetime | None) -> tuple[str, list]:
    if since is None:
        return STAGE_RUNS_SQL.format(job_filter="", finished_filter=""), []
    job_filter = (f"AND job_id IN (SELECT job_id FROM {Event._meta.db_table} "
                  "WHERE type = 'stage_finished' AND created_at >= %s)")
    return STAGE_RUNS_SQL.format(job_filter=job_filter, finished_filter="AND finished >= %s"), [since, since]


@dataclass
class StageLatency:
    stage: str
    count: int
    p50: float | None
    p95: float | None
    max: float | None


def stage_latency(*, since: datetime) -> list[StageLatency]:
    """Per stage, in pipeline order: how many finished since ``since`` and their p50/p95/max seconds."""
    runs, params = _stage_runs_query(since)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT stage, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds), "
                       f"percentile_cont(0.95) WITHIN GROUP (ORDER BY seconds), max(seconds) "
                       f"FROM ({runs}) AS runs GROUP BY stage", params)
        rows = {stage: (count, p50, p95, top) for stage, count, p50, p95, top in cursor.fetchall()}
    result = []
    for stage in STAGE_ORDER:
        count, p50, p95, top = rows.get(stage, (0, None, None, None))
        result.append(StageLatency(stage, count, _float(p50), _float(p95), _float(top)))
    return result


def _float(value) -> float | None:
    return float(value) if value is not None else None


@dataclass
class StageHistogram:
    stage: str
    buckets: list[tuple[float, int]]  # (upper bound, cumulative count), +Inf last
    count: int
    sum: float


def stage_duration_histograms(buckets: tuple[float, ...] = STAGE_SECONDS_BUCKETS) -> list[StageHistogram]:
    """Cumulative histogram of every stage run ever finished (what Prometheus expects from a histogram)."""
    runs, params = _stage_runs_query(None)
    counts = ", ".join("count(*) FILTER (WHERE seconds <= %s)" for _ in buckets)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT stage, count(*), coalesce(sum(seconds), 0), {counts} FROM ({runs}) AS runs "
                       "GROUP BY stage", [*params, *buckets])
        rows = {row[0]: row[1:] for row in cursor.fetchall()}
    result = []
    for stage in STAGE_ORDER:
        if stage not in rows:
            continue
        count, total, *cumulative = rows[stage]
        pairs = list(zip(buckets, cumulative, strict=True)) + [(float("inf"), count)]
        result.append(StageHistogram(stage, pairs, count, float(total)))
    return result


# --- Failures ----------------------------------------------------------------------------------

@dataclass
class FailureSummary:
    ended: int  # jobs that completed or failed in the window
    failed: int
    by_code: list[tuple[str, int]] = field(default_factory=list)  # most frequent first

    @property
    def rate(self) -> float:
        return self.failed / self.ended if self.ended else 0.0


def failure_summary(*, since: datetime) -> FailureSummary:
    """Failed share of the jobs that ended (complete or failed) since ``since``, and the failures by error code."""
    ended = Job.objects.order_by().filter(finished_at__gte=since, status__in=[Status.COMPLETE, *FAILED])
    totals = ended.aggregate(ended=Count("id"), failed=Count("id", filter=Q(status__in=FAILED)))
    by_code = list(ended.filter(status__in=FAILED).values_list("last_error_code").annotate(n=Count("id"))
                   .order_by("-n", "last_error_code"))
    return FailureSummary(totals["ended"], totals["failed"], [(code or "UNKNOWN", n) for code, n in by_code])


def recent_failures(*, limit: int = 20) -> list[Job]:
    return list(Job.objects.filter(status__in=FAILED).select_related("document", "document__owner")
                .order_by("-finished_at", "-created_at")[:limit])


def dead_lettered_count() -> int:
    """Failed jobs that gave up after exhausting their retries (as opposed to refusing bad input at once)."""
    # a failed job later retried (its document now has a newer job) is no longer waiting for anyone
    return Job.objects.filter(status__in=FAILED, last_error_retryable=True, document__current_job=F("pk")).count()


# --- Backlog and stuck jobs --------------------------------------------------------------------

def _waiting(now: datetime) -> QuerySet:
    """Jobs not ended and not held by a live worker lease: queued, retrying, or waiting on the parser."""
    return Job.objects.order_by().filter(status__in=WAITING_STATUSES).exclude(
        ~Q(lease_owner="") & Q(lease_expires_at__gt=now))


@dataclass
class Backlog:
    waiting: int
    running: int
    oldest_age_seconds: float | None
    oldest_job_id: str | None


def backlog(*, now: datetime | None = None) -> Backlog:
    """How many jobs wait, how many run, and how long the job due longest has waited for a worker.

    A job waiting on purpose (a parse polling the parser later, a retry in its backoff) is not late:
    its wait counts from when it became due (its ``next_attempt_at``), others' from their last change
    (when they were queued)."""
    now = now or timezone.now()
    waiting = _waiting(now)
    due = (waiting.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
           .annotate(due_since=Coalesce("next_attempt_at", "updated_at")))
    oldest = due.order_by("due_since").values_list("id", "due_since").first()
    running = Job.objects.filter(status__in=WAITING_STATUSES, lease_expires_at__gt=now).exclude(lease_owner="").count()
    return Backlog(waiting.count(), running, (now - oldest[1]).total_seconds() if oldest else None,
                   str(oldest[0]) if oldest else None)


def queue_depth() -> dict[str, int]:
    """Messages in the django-q2 broker: waiting to be picked up, and taken but not yet acknowledged."""
    from django_q.brokers import get_broker

    broker = get_broker()
    return {"queued": int(broker.queue_size() or 0), "in_flight": int(broker.lock_size() or 0)}


@dataclass
class StuckJob:
    job: Job
    reason: str
    detail: str


STUCK_REASONS = {
    "lease_expired": "A worker took the job and stopped renewing its lease (it died or hangs).",
    "parser_overdue": "Sent to the parser; neither its webhook nor a poll has brought the result.",
    "retry_overdue": "A retry was due over two minutes ago and no worker picked it up (is the sweeper running?).",
    "message_lost": "Waiting with no retry time and no wake-up for too long (is the sweeper running?).",
}


def stuck_jobs(*, now: datetime | None = None, limit: int = 50) -> list[StuckJob]:
    """Jobs that will not move without help (or without the sweeper), each with the reason."""
    now = now or timezone.now()
    open_jobs = Job.objects.filter(status__in=WAITING_STATUSES).select_related("document", "document__owner")
    checks = [
        ("lease_expired", open_jobs.exclude(lease_owner="").filter(lease_expires_at__lt=now)),
        ("parser_overdue", open_jobs.filter(status=Status.PARSE_QUEUED, lease_owner="").exclude(parse_job_id="")
         .filter(created_at__lt=now - timedelta(seconds=settings.WEBHOOK_OVERDUE_SECONDS))),
        ("retry_overdue", open_jobs.filter(lease_owner="", next_attempt_at__lt=now - timedelta(minutes=2))),
        ("message_lost", open_jobs.filter(lease_owner="", next_attempt_at__isnull=True,
                                          updated_at__lt=now - timedelta(seconds=settings.SWEEP_LOST_MESSAGE_SECONDS))),
    ]
    found: dict = {}
    for reason, queryset in checks:
        for job in queryset.order_by("created_at")[:limit]:
            found.setdefault(job.pk, StuckJob(job, reason, STUCK_REASONS[reason]))
    return sorted(found.values(), key=lambda s: s.job.created_at)[:limit]


# --- Workers -----------------------------------------------------------------------------------

@dataclass
class WorkerStatus:
    heartbeats: list[tuple[str, datetime, float]]  # (worker, seen_at, age seconds), freshest first
    clusters: list[dict]  # live django-q2 clusters, from the shared cache
    last_seen_age: float | None

    @property
    def healthy(self) -> bool:
        return (self.last_seen_age is not None and self.last_seen_age <= settings.HEARTBEAT_MAX_AGE_SECONDS
                and bool(self.clusters))


def live_clusters() -> list[dict]:
    """django-q2 clusters alive now: each saves its status to the shared cache every half second, expiring in 3 s."""
    from django_q.conf import Conf
    from django_q.status import Stat

    now = timezone.now()
    return [{"id": str(stat.cluster_id), "host": stat.host, "status": stat.status, "workers": len(stat.workers),
             "reincarnations": stat.reincarnations, "task_queue": stat.task_q_size,
             "uptime_seconds": (now - stat.tob).total_seconds() if stat.tob else None}
            for stat in Stat.get_all() if stat.status != Conf.STOPPED]


def worker_status(*, now: datetime | None = None) -> WorkerStatus:
    now = now or timezone.now()
    beats = [(worker, seen, (now - seen).total_seconds())
             for worker, seen in WorkerHeartbeat.objects.order_by("-seen_at").values_list("worker", "seen_at")[:20]]
    return WorkerStatus(beats, live_clusters(), beats[0][2] if beats else None)


# --- Providers and retries ---------------------------------------------------------------------

@dataclass
class ProviderCalls:
    provider: str
    ok: int
    failed: int
    by_code: dict[str, int]

    @property
    def error_rate(self) -> float:
        total = self.ok + self.failed
        return self.failed / total if total else 0.0


def provider_calls(*, since: datetime | None = None) -> list[ProviderCalls]:
    """Calls per provider: successful ones counted by the stages that finished, failed ones by their error events."""
    events = Event.objects.order_by()
    if since is not None:
        events = events.filter(created_at__gte=since)
    calls = Cast(KeyTextTransform("provider_calls", "payload"), IntegerField())
    ok = dict(events.filter(type="stage_finished", stage__in=PROVIDER_STAGE.values()).values_list("stage")
              .annotate(n=Coalesce(Sum(calls), 0)))
    all_codes = [code for codes in PROVIDER_ERROR_CODES.values() for code in codes]
    failed = dict(events.filter(type__in=["retry_scheduled", "stage_failed"], code__in=all_codes)
                  .values_list("code").annotate(n=Count("id")))
    result = []
    for provider, codes in PROVIDER_ERROR_CODES.items():
        by_code = {code: failed[code] for code in codes if failed.get(code)}
        result.append(ProviderCalls(provider, ok.get(PROVIDER_STAGE[provider], 0), sum(by_code.values()), by_code))
    return result


def retries(*, since: datetime | None = None) -> list[tuple[str, str, int]]:
    """(stage, error code, retries scheduled) — every transient failure the runner backed off from."""
    events = Event.objects.order_by().filter(type="retry_scheduled")
    if since is not None:
        events = events.filter(created_at__gte=since)
    return list(events.values_list("stage", "code").annotate(n=Count("id")).order_by("stage", "code"))


# --- Cost --------------------------------------------------------------------------------------

def _prices() -> tuple[Decimal, Decimal]:
    return (Decimal(str(settings.PARSE_PRICE_PER_PAGE_USD)),
            Decimal(str(settings.EMBED_PRICE_PER_MILLION_TOKENS_USD)) / Decimal(1_000_000))


def job_billed_pages(job: Job) -> int:
    """Pages the parser billed for this job: only when the job itself sent the file to LlamaParse and got it back."""
    if job.parse_job_id and job.stage_times.get("parse", {}).get("finished"):
        return job.page_count or 0
    return 0


def job_cost_estimate(job: Job) -> Decimal:
    """Estimated provider spend of one job in USD: pages parsed × parse price + tokens embedded × embedding price.

    Works for running jobs too (what was spent so far). Reprocessing from chunk or embed parses nothing.
    """
    page_price, token_price = _prices()
    return (page_price * job_billed_pages(job) + token_price * job.tokens_embedded).quantize(Decimal("0.000001"))


@dataclass
class DailyCost:
    day: date
    jobs: int
    pages: int
    tokens: int
    usd: Decimal


def cost_per_day(*, days: int = 7, now: datetime | None = None) -> list[DailyCost]:
    """Estimated spend per calendar day (UTC) of job creation, the last ``days`` days, oldest first."""
    now = now or timezone.now()
    first = (now - timedelta(days=days - 1)).date()
    billed = Case(When(~Q(parse_job_id="") & Q(stage_times__parse__has_key="finished"),
                       then=Coalesce("page_count", 0)), default=Value(0), output_field=IntegerField())
    rows = {row["day"]: row for row in Job.objects.order_by().filter(created_at__date__gte=first)
            .annotate(day=TruncDate("created_at")).values("day")
            .annotate(jobs=Count("id"), pages=Coalesce(Sum(billed), 0), tokens=Coalesce(Sum("tokens_embedded"), 0))}
    page_price, token_price = _prices()
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = rows.get(day, {"jobs": 0, "pages": 0, "tokens": 0})
        usd = (page_price * row["pages"] + token_price * row["tokens"]).quantize(Decimal("0.000001"))
        result.append(DailyCost(day, row["jobs"], row["pages"], row["tokens"], usd))
    return result


# --- Alerts ------------------------------------------------------------------------------------

def open_alerts() -> list:
    from monitoring.models import Alert

    return list(Alert.objects.filter(state=Alert.State.OPEN).order_by("opened_at"))


def recent_alerts(*, limit: int = 10) -> list:
    from monitoring.models import Alert

    return list(Alert.objects.order_by("-opened_at")[:limit])


# --- Everything the dashboard and `pipeline_status` show -----------------------------------------

@dataclass
class Snapshot:
    now: datetime
    documents: dict[str, int]
    jobs: dict[str, int]
    per_minute: list[ThroughputBucket]
    per_hour: list[ThroughputBucket]
    latency: list[StageLatency]
    failures: FailureSummary
    backlog: Backlog
    queue: dict[str, int]
    stuck: list[StuckJob]
    recent_failures: list[Job]
    dead_lettered: int
    workers: WorkerStatus
    providers: list[ProviderCalls]
    retries: list[tuple[str, str, int]]
    costs: list[DailyCost]
    open_alerts: list
    recent_alerts: list


def snapshot(*, now: datetime | None = None) -> Snapshot:
    """One consistent set of the operational numbers (last hour for rates, last 24 h for failures)."""
    now = now or timezone.now()
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    return Snapshot(
        now=now, documents=documents_by_status(), jobs=jobs_by_status(),
        per_minute=throughput(bucket="minute", buckets=60, now=now),
        per_hour=throughput(bucket="hour", buckets=24, now=now),
        latency=stage_latency(since=day_ago), failures=failure_summary(since=day_ago), backlog=backlog(now=now),
        queue=queue_depth(), stuck=stuck_jobs(now=now), recent_failures=recent_failures(limit=15),
        dead_lettered=dead_lettered_count(), workers=worker_status(now=now), providers=provider_calls(since=hour_ago),
        retries=retries(since=day_ago), costs=cost_per_day(days=7, now=now), open_alerts=open_alerts(),
        recent_alerts=recent_alerts(limit=10))
