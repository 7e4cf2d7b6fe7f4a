"""Per-member limits: uploads per day, status polls per minute, token requests per IP, active jobs.

The rate throttles are DRF's (counts kept in the shared cache, so every web process sees the same
numbers); their rates come from settings on each request. The active-jobs cap counts rows, not
requests: it is a fact about the member's work in progress, so it is read from the database.
"""
from __future__ import annotations

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

from ingestion import selectors
from ingestion.api.errors import RateLimited
from ingestion.audit import ClientInfo


def client_ident(request) -> str:
    """The client's address as the audit log records it: X-Forwarded-For is believed only as far as
    API_TRUSTED_PROXY_COUNT proxies vouch for it, so a client cannot pick a fresh identity (and a
    fresh allowance) by sending a header of its own."""
    return ClientInfo.from_request(request).ip_address or request.META.get("REMOTE_ADDR", "")


class SettingsRateThrottle(UserRateThrottle):
    """A per-member rate read from ``setting`` (requests per ``period``) each time it is checked."""

    setting = ""
    period = "min"
    error_code = "THROTTLED"

    def get_rate(self) -> str:
        return f"{getattr(settings, self.setting)}/{self.period}"

    def get_ident(self, request) -> str:
        return client_ident(request)

    def refusal(self, wait: float) -> RateLimited:
        return RateLimited(code=self.error_code, message=self.describe(), wait=wait or 1)

    def describe(self) -> str:
        raise NotImplementedError


class UploadThrottle(SettingsRateThrottle):
    scope = "uploads"
    setting = "API_UPLOADS_PER_DAY"
    period = "day"
    error_code = "UPLOAD_RATE_LIMITED"

    def describe(self) -> str:
        return f"You reached the limit of {self.num_requests} uploads in 24 hours."


class StatusPollThrottle(SettingsRateThrottle):
    scope = "status_polls"
    setting = "API_STATUS_POLLS_PER_MINUTE"
    period = "min"
    error_code = "POLL_RATE_LIMITED"

    def describe(self) -> str:
        return (f"You reached the limit of {self.num_requests} status requests a minute; "
                "poll less often (every few seconds is plenty).")


class AuthAttemptThrottle(SimpleRateThrottle):
    """Token requests per client address: slows down password guessing."""

    scope = "auth"
    error_code = "AUTH_RATE_LIMITED"

    def get_rate(self) -> str:
        return f"{settings.API_AUTH_ATTEMPTS_PER_MINUTE}/min"

    def get_ident(self, request) -> str:
        return client_ident(request)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def refusal(self, wait: float) -> RateLimited:
        return RateLimited(code=self.error_code, message=f"Too many token requests from your address "
                           f"(limit {self.num_requests} a minute).", wait=wait or 1)


def active_jobs_check(*, owner) -> None:
    """Refuse (429) to start another job while the member already has the allowed number running."""
    active = selectors.active_job_count_for_owner(owner=owner)
    limit = settings.API_MAX_ACTIVE_JOBS
    if active >= limit:
        raise RateLimited(code="ACTIVE_JOBS_LIMIT",
                          message=f"You already have {active} documents processing (the limit is {limit}); "
                                  "wait until one has finished.",
                          wait=settings.API_ACTIVE_JOBS_RETRY_SECONDS)
