"""The staff-only monitoring dashboard: server-rendered, SVG charts, refreshes itself."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from monitoring import charts, probes, selectors
from monitoring.alerts import alerts_evaluate_if_stale


def _staff_only(request):
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), reverse("admin:login"))
    if not request.user.is_staff:
        raise PermissionDenied("The monitoring dashboard is for staff.")
    return None


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


@never_cache
def dashboard(request):
    refused = _staff_only(request)
    if refused is not None:
        return refused
    # The alert schedule runs in the qcluster; when none runs, the dashboard still evaluates the rules.
    alerts_evaluate_if_stale()
    snap = selectors.snapshot()
    with ThreadPoolExecutor(max_workers=len(probes.PROVIDERS)) as pool:
        probe_results = {result.provider: result for result in pool.map(probes.provider_probe, probes.PROVIDERS)}
    per_minute = [(b.start.strftime("%H:%M"), b.complete, b.failed) for b in snap.per_minute]
    per_hour = [(b.start.strftime("%H:00"), b.complete, b.failed) for b in snap.per_hour]
    statuses = [(status, count) for status, count in snap.documents.items() if count]
    latency_rows = [{"stage": row.stage, "count": row.count, "p50": _fmt_seconds(row.p50),
                     "p95": _fmt_seconds(row.p95), "max": _fmt_seconds(row.max)} for row in snap.latency]
    providers = [{"name": calls.provider, "probe": probe_results[calls.provider], "ok": calls.ok,
                  "failed": calls.failed, "error_rate": calls.error_rate, "by_code": calls.by_code}
                 for calls in snap.providers]
    context = {
        "snap": snap,
        "refresh_seconds": settings.DASHBOARD_REFRESH_SECONDS,
        "throughput_minute_chart": charts.stacked_columns(per_minute, title="Jobs ended per minute, last hour"),
        "throughput_hour_chart": charts.stacked_columns(per_hour, title="Jobs ended per hour, last 24 hours",
                                                        label_every=6),
        "job_statuses": " · ".join(f"{status} {count}" for status, count in snap.jobs.items() if count) or "none",
        "completed_last_hour": sum(b.complete for b in snap.per_minute),
        "failed_last_hour": sum(b.failed for b in snap.per_minute),
        "status_chart": charts.horizontal_bars([(s, c, str(c)) for s, c in statuses], title="Documents by status"),
        "failure_chart": charts.horizontal_bars(
            [(code, n, f"{n} ({n / snap.failures.ended:.0%})" if snap.failures.ended else str(n))
             for code, n in snap.failures.by_code[:10]], title="Failures by error code, last 24 hours"),
        "latency_chart": charts.horizontal_bars(
            [(f"{row.stage} p95", row.p95 or 0, _fmt_seconds(row.p95)) for row in snap.latency if row.count],
            title="p95 stage latency, last 24 hours"),
        "latency_rows": latency_rows,
        "backlog_age": _fmt_seconds(snap.backlog.oldest_age_seconds),
        "backlog_limit": _fmt_seconds(settings.BACKLOG_MAX_AGE_SECONDS),
        "backlog_over": (snap.backlog.oldest_age_seconds or 0) > settings.BACKLOG_MAX_AGE_SECONDS,
        "heartbeat_age": (f"{_fmt_seconds(snap.workers.last_seen_age)} ago" if snap.workers.last_seen_age is not None
                          else "never"),
        "providers": providers,
        "cost_today": snap.costs[-1].usd if snap.costs else 0,
        "cost_chart": charts.horizontal_bars([(c.day.strftime("%a %d %b"), float(c.usd), f"${c.usd:.4f}")
                                              for c in snap.costs], title="Estimated spend per day"),
        "prices": {"page": settings.PARSE_PRICE_PER_PAGE_USD, "million_tokens": settings.EMBED_PRICE_PER_MILLION_TOKENS_USD},
    }
    return render(request, "monitoring/dashboard.html", context)


def favicon(request):
    """Browsers ask every site for /favicon.ico; answer 'nothing here' without an error in their console."""
    response = HttpResponse(status=204)
    response["Cache-Control"] = "public, max-age=86400"
    return response
