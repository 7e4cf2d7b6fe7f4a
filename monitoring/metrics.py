"""/metrics in Prometheus text format: a collector that reads the database at scrape time.

Workers run in other processes (other hosts, even), so in-process counters of the web server
would see none of their work. Gauges come from job rows; counters and the stage-duration
histogram come from the append-only event log, so every web process reports the same numbers.
"""
from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from monitoring import selectors
from monitoring.alerts import alerts_evaluate_if_stale
from monitoring.models import Alert


class PipelineCollector(Collector):
    def collect(self):
        documents = GaugeMetricFamily("navigator_documents", "Documents by status.", labels=["status"])
        for status, count in selectors.documents_by_status().items():
            documents.add_metric([status], count)
        yield documents

        jobs = GaugeMetricFamily("navigator_jobs", "Processing jobs by status.", labels=["status"])
        for status, count in selectors.jobs_by_status().items():
            jobs.add_metric([status], count)
        yield jobs

        queue = GaugeMetricFamily("navigator_queue_depth", "Task messages in the django-q2 broker.", labels=["state"])
        for state, count in selectors.queue_depth().items():
            queue.add_metric([state], count)
        yield queue

        backlog = selectors.backlog()
        yield GaugeMetricFamily("navigator_backlog_jobs", "Jobs waiting for a worker (not ended, no live lease).",
                                value=backlog.waiting)
        yield GaugeMetricFamily("navigator_running_jobs", "Jobs a worker holds a live lease on.", value=backlog.running)
        yield GaugeMetricFamily("navigator_backlog_oldest_age_seconds", "Age of the oldest waiting job (0: none).",
                                value=backlog.oldest_age_seconds or 0.0)

        stuck = GaugeMetricFamily("navigator_stuck_jobs", "Jobs that will not move without help.", labels=["reason"])
        counts = {reason: 0 for reason in selectors.STUCK_REASONS}
        for item in selectors.stuck_jobs(limit=10_000):
            counts[item.reason] += 1
        for reason, count in counts.items():
            stuck.add_metric([reason], count)
        yield stuck
        yield GaugeMetricFamily("navigator_dead_lettered_jobs", "Failed jobs that exhausted their retries.",
                                value=selectors.dead_lettered_count())

        workers = selectors.worker_status()
        yield GaugeMetricFamily("navigator_qcluster_clusters", "django-q2 clusters reporting status now.",
                                value=len(workers.clusters))
        if workers.last_seen_age is not None:
            yield GaugeMetricFamily("navigator_worker_heartbeat_age_seconds", "Seconds since the freshest heartbeat.",
                                    value=workers.last_seen_age)

        histogram = HistogramMetricFamily("navigator_stage_duration_seconds",
                                          "Stage latency, first start (retries included) to finish.", labels=["stage"])
        for item in selectors.stage_duration_histograms():
            buckets = [("+Inf" if bound == float("inf") else f"{bound:g}", count) for bound, count in item.buckets]
            histogram.add_metric([item.stage], buckets, item.sum)
        yield histogram

        calls = CounterMetricFamily("navigator_provider_calls", "Provider calls by outcome (ok or the error code).",
                                    labels=["provider", "outcome"])
        for provider in selectors.provider_calls():
            calls.add_metric([provider.provider, "ok"], provider.ok)
            for code, count in provider.by_code.items():
                calls.add_metric([provider.provider, code], count)
        yield calls

        retries = CounterMetricFamily("navigator_retries", "Stage retries scheduled after transient errors.",
                                      labels=["stage", "code"])
        for stage, code, count in selectors.retries():
            retries.add_metric([stage, code], count)
        yield retries

        alerts = GaugeMetricFamily("navigator_alerts_open", "Open alerts by rule.", labels=["rule"])
        open_rules = {alert.rule for alert in selectors.open_alerts()}
        for rule in Alert.Rule.values:
            alerts.add_metric([rule], int(rule in open_rules))
        yield alerts

        today = selectors.cost_per_day(days=1)[0]
        yield GaugeMetricFamily("navigator_cost_estimate_usd_today", "Estimated provider spend of today's jobs.",
                                value=float(today.usd))


registry = CollectorRegistry(auto_describe=False)
registry.register(PipelineCollector())


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text. With ``METRICS_TOKEN`` set, scrapers send it as a bearer token; staff members
    signed in to the admin may always read it. Without a token it is open only in development
    (``DEBUG``): in production the counts, error codes and spend it shows are not for everyone."""
    if not (request.user.is_authenticated and request.user.is_staff):
        if settings.METRICS_TOKEN:
            sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            # compared as bytes: a token with non-ASCII characters is refused, not a crash
            if not hmac.compare_digest(sent.encode(), settings.METRICS_TOKEN.encode()):
                return HttpResponse("A valid 'Authorization: Bearer <METRICS_TOKEN>' header is required.\n",
                                    status=401, content_type="text/plain")
        elif not settings.DEBUG:
            return HttpResponse("Metrics are closed: set METRICS_TOKEN on the server and send it as "
                                "'Authorization: Bearer <METRICS_TOKEN>', or sign in as staff.\n",
                                status=403, content_type="text/plain")
    # Prometheus scrapes even when every qcluster (and with it the alert schedule) is down.
    alerts_evaluate_if_stale()
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
