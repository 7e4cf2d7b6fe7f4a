"""Alert rules, their evaluation, and delivery by email and webhook.

Each rule measures one value from the selectors and compares it with a threshold from settings.
A rule that starts firing opens an Alert and notifies; one that clears resolves it and notifies.
Alerts are monitoring's own records: evaluating them never changes pipeline state.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from monitoring import selectors
from monitoring.models import Alert

logger = logging.getLogger(__name__)
LAST_EVALUATION_KEY = "monitoring:alerts:last-evaluated"


@dataclass
class RuleResult:
    rule: str
    firing: bool
    value: float | None
    threshold: float
    message: str


def rule_failure_rate(now) -> RuleResult:
    window = settings.ALERT_WINDOW_MINUTES
    summary = selectors.failure_summary(since=now - timedelta(minutes=window))
    firing = summary.ended >= settings.ALERT_FAILURE_MIN_JOBS and summary.rate >= settings.ALERT_FAILURE_RATE
    top = ", ".join(f"{code} ×{n}" for code, n in summary.by_code[:3]) or "none"
    return RuleResult(Alert.Rule.FAILURE_RATE, firing, summary.rate, settings.ALERT_FAILURE_RATE,
                      f"{summary.failed} of {summary.ended} jobs that ended in the last {window} min failed "
                      f"({summary.rate:.0%}); top codes: {top}.")


def rule_backlog_age(now) -> RuleResult:
    backlog = selectors.backlog(now=now)
    age = backlog.oldest_age_seconds or 0.0
    return RuleResult(Alert.Rule.BACKLOG_AGE, age > settings.ALERT_BACKLOG_AGE_SECONDS, age,
                      settings.ALERT_BACKLOG_AGE_SECONDS,
                      f"The oldest of {backlog.waiting} waiting jobs has waited {age:.0f}s "
                      f"(job {backlog.oldest_job_id or '-'}).")


def rule_worker_heartbeat(now) -> RuleResult:
    status = selectors.worker_status(now=now)
    age = status.last_seen_age
    limit = settings.ALERT_HEARTBEAT_MAX_AGE_SECONDS
    firing = age is None or age > limit or not status.clusters
    if age is None:
        message = "No qcluster has ever written a heartbeat: no document will be processed."
    elif not status.clusters:
        message = f"No qcluster is running (last heartbeat {age:.0f}s ago): no document will be processed."
    else:
        message = f"The last qcluster heartbeat is {age:.0f}s old; {len(status.clusters)} cluster(s) report status."
    return RuleResult(Alert.Rule.WORKER_HEARTBEAT, firing, age, limit, message)


def rule_provider_error_rate(now) -> RuleResult:
    window = settings.ALERT_WINDOW_MINUTES
    worst = None
    for calls in selectors.provider_calls(since=now - timedelta(minutes=window)):
        if calls.ok + calls.failed < settings.ALERT_PROVIDER_MIN_CALLS:
            continue
        if worst is None or calls.error_rate > worst.error_rate:
            worst = calls
    rate = worst.error_rate if worst else 0.0
    detail = (f"{worst.provider}: {worst.failed} failed of {worst.ok + worst.failed} calls in the last {window} min "
              f"({rate:.0%}); codes: {', '.join(f'{c} ×{n}' for c, n in worst.by_code.items()) or 'none'}."
              if worst else f"Too few provider calls in the last {window} min to judge.")
    return RuleResult(Alert.Rule.PROVIDER_ERROR_RATE, rate >= settings.ALERT_PROVIDER_ERROR_RATE, rate,
                      settings.ALERT_PROVIDER_ERROR_RATE, detail)


RULES = [rule_failure_rate, rule_backlog_age, rule_worker_heartbeat, rule_provider_error_rate]


def _deliver(alert: Alert, event: str) -> list[dict]:
    """Send ``event`` (opened/resolved) of ``alert`` to every configured channel; failures are logged, not raised."""
    subject = f"[navigator] {event.upper()}: {alert.get_rule_display()}"
    body = (f"{alert.message}\n\nValue: {alert.last_value}  threshold: {alert.threshold}\n"
            f"Opened: {alert.opened_at:%Y-%m-%d %H:%M:%S} UTC"
            + (f"\nResolved: {alert.resolved_at:%Y-%m-%d %H:%M:%S} UTC" if alert.resolved_at else "")
            + "\nRunbook: docs/operations.md")
    outcomes = []
    now = timezone.now().isoformat()
    if settings.ALERT_EMAIL_RECIPIENTS:
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, settings.ALERT_EMAIL_RECIPIENTS)
            outcomes.append({"channel": "email", "event": event, "ok": True, "detail": "sent", "at": now})
        except Exception as exc:  # SMTP errors come in many types; an alert must still be recorded
            logger.warning("alert email failed: %s", exc)
            outcomes.append({"channel": "email", "event": event, "ok": False, "detail": str(exc)[:200], "at": now})
    if settings.ALERT_WEBHOOK_URL:
        payload = {"event": event, "rule": alert.rule, "title": alert.get_rule_display(), "state": alert.state,
                   "value": alert.last_value, "threshold": alert.threshold, "message": alert.message,
                   "opened_at": alert.opened_at.isoformat(),
                   "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None, "text": subject}
        try:
            response = httpx.post(settings.ALERT_WEBHOOK_URL, json=payload,
                                  timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS)
            ok = response.status_code < 400
            outcomes.append({"channel": "webhook", "event": event, "ok": ok, "detail": f"HTTP {response.status_code}",
                             "at": now})
        except httpx.HTTPError as exc:
            logger.warning("alert webhook failed: %s", exc)
            outcomes.append({"channel": "webhook", "event": event, "ok": False, "detail": exc.__class__.__name__,
                             "at": now})
    return outcomes


def _apply(result: RuleResult, now) -> tuple[Alert | None, str | None]:
    """Open, update or resolve the rule's alert. Returns the alert and 'opened'/'resolved' when that happened."""
    current = Alert.objects.filter(rule=result.rule, state=Alert.State.OPEN).first()
    if result.firing and current is None:
        try:
            with transaction.atomic():
                alert = Alert.objects.create(rule=result.rule, opened_at=now, last_value=result.value,
                                             threshold=result.threshold, message=result.message,
                                             last_evaluated_at=now)
        except IntegrityError:  # another evaluator opened it a moment ago; it also notified
            return None, None
        return alert, "opened"
    if current is None:
        return None, None
    current.last_value, current.last_evaluated_at = result.value, now
    if result.firing:
        current.message = result.message
        current.save(update_fields=["last_value", "last_evaluated_at", "message"])
        return current, None
    resolved = Alert.objects.filter(pk=current.pk, state=Alert.State.OPEN).update(
        state=Alert.State.RESOLVED, resolved_at=now, last_value=result.value, last_evaluated_at=now)
    if not resolved:  # another evaluator resolved it
        return None, None
    current.refresh_from_db()
    return current, "resolved"


def alerts_evaluate() -> dict[str, str]:
    """Evaluate every rule once; open, resolve and notify as needed. Safe to run concurrently and repeatedly."""
    now = timezone.now()
    outcome = {}
    for rule in RULES:
        result = rule(now)
        alert, event = _apply(result, now)
        outcome[result.rule] = event or ("firing" if result.firing else "ok")
        if alert is not None and event is not None:
            delivered = _deliver(alert, event)
            if delivered:
                Alert.objects.filter(pk=alert.pk).update(notified=alert.notified + delivered)
    cache.set(LAST_EVALUATION_KEY, now.isoformat(), timeout=None)
    return outcome


def alerts_evaluate_if_stale(*, max_age_seconds: int = 120) -> bool:
    """Evaluate the rules when the scheduled evaluation has not run lately.

    The schedule runs inside the qcluster, so when every qcluster is down it stops too; /health/, the
    dashboard and /metrics call this so the "no worker" alert still fires and is delivered.
    """
    last = cache.get(LAST_EVALUATION_KEY)
    if last and (timezone.now() - datetime.fromisoformat(last)).total_seconds() < max_age_seconds:
        return False
    alerts_evaluate()
    return True
