"""python manage.py verify_deployment: the deployment gate.

Against the configured environment (NAVIGATOR_URL, or --url): the health checks are green, a
generated canary PDF uploaded through the API goes through every stage, is found by search, and is
deleted again. Exits non-zero naming the first step that failed.
"""
from __future__ import annotations

import time

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.authtoken.models import Token

from ingestion.statuses import FAILED, TERMINAL
from monitoring.canary import canary_marker, canary_pdf

CANARY_FILENAME_PREFIX = "deployment-canary-"
# A deployment that just started may need a few seconds before its workers report in.
HEALTH_WAIT_SECONDS = 30


class StepFailed(Exception):
    def __init__(self, step: str, detail: str):
        super().__init__(f"{step}: {detail}")
        self.step, self.detail = step, detail


class Command(BaseCommand):
    help = ("Verify a deployment end to end: health, then a canary PDF through upload, every pipeline stage, "
            "search and deletion. Exits 1 naming the failing step.")

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=120.0,
                            help="Seconds the whole verification may take (default 120).")
        parser.add_argument("--url", default=settings.LOCAL_SERVER_URL,
                            help="Base URL of the deployment (default: NAVIGATOR_URL, %(default)s).")
        parser.add_argument("--token", default="",
                            help="API token of the canary member; default: create or reuse the CANARY_USERNAME "
                                 "account in the configured database.")

    def handle(self, *args, **options):
        self.deadline = time.monotonic() + options["timeout"]
        self.timeout = options["timeout"]
        base = options["url"].rstrip("/")
        self.log(f"Verifying {base} (timeout {options['timeout']:g}s)")
        document_id = None
        client = None
        try:
            self.step("health", lambda: self.check_health(base))
            token = options["token"] or self.step("canary-account", self.canary_token)
            client = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"})
            self.step("cleanup-leftovers", lambda: self.delete_leftovers(client))
            marker = canary_marker()
            document_id = self.step("upload", lambda: self.upload(client, marker))
            self.step("process", lambda: self.wait_complete(client, document_id))
            self.step("search", lambda: self.search(client, document_id, marker))
            self.step("delete", lambda: self.delete(client, document_id))
            document_id = None
        except StepFailed as failure:
            raise CommandError(f"verify_deployment failed at step '{failure.step}': {failure.detail}") from None
        finally:
            if document_id and client is not None:
                # Leave nothing behind when a later step failed; the failure above is what matters.
                try:
                    client.delete(f"/api/v1/documents/{document_id}/", timeout=10)
                except httpx.HTTPError:
                    pass
            if client is not None:
                client.close()
        self.log("[ok] deployment verified: every step passed", style=self.style.SUCCESS)

    # --- plumbing ---------------------------------------------------------------------------

    def log(self, message: str, style=None) -> None:
        self.stdout.write(style(message) if style else message)

    def remaining(self, step: str) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise StepFailed(step, f"the {self.timeout:g}s budget ran out before this step.")
        return left

    def step(self, name: str, action):
        self.remaining(name)
        started = time.monotonic()
        try:
            result = action()
        except StepFailed:
            raise
        except httpx.HTTPError as exc:
            raise StepFailed(name, f"HTTP request failed ({exc.__class__.__name__}: {exc}).") from exc
        self.log(f"[ok] {name} ({time.monotonic() - started:.1f}s)")
        return result

    def http_timeout(self, step: str) -> float:
        return min(30.0, self.remaining(step))

    # --- steps ------------------------------------------------------------------------------

    def check_health(self, base: str) -> None:
        """Green health, waiting up to HEALTH_WAIT_SECONDS (within the budget) for a deployment still starting."""
        give_up = min(self.deadline, time.monotonic() + HEALTH_WAIT_SECONDS)
        while True:
            try:
                failure = self._health_failure(base)
            except httpx.TransportError as exc:
                failure = f"{base}/health/ could not be reached ({exc.__class__.__name__})."
            if failure is None:
                return
            if time.monotonic() + 2 > give_up:
                raise StepFailed("health", failure)
            time.sleep(2)

    def _health_failure(self, base: str) -> str | None:
        response = httpx.get(f"{base}/health/", params={"format": "json"}, timeout=self.http_timeout("health"))
        try:
            checks = response.json()
        except ValueError:
            return f"/health/ answered HTTP {response.status_code} without JSON."
        failing = {name: result for name, result in checks.items() if result != "OK"}
        if response.status_code != 200 or failing:
            detail = "; ".join(f"{name}: {result}" for name, result in failing.items())
            return f"HTTP {response.status_code}; {detail or 'no check details'}"
        return None

    def canary_token(self) -> str:
        User = get_user_model()
        user, created = User.objects.get_or_create(username=settings.CANARY_USERNAME,
                                                   defaults={"is_staff": False, "is_superuser": False})
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return Token.objects.get_or_create(user=user)[0].key

    def delete_leftovers(self, client: httpx.Client) -> None:
        response = client.get("/api/v1/documents/", params={"limit": 200},
                              timeout=self.http_timeout("cleanup-leftovers"))
        if response.status_code != 200:
            raise StepFailed("cleanup-leftovers", f"listing the canary's documents answered HTTP "
                                                  f"{response.status_code}: {response.text[:200]}")
        body = response.json()
        for document in body.get("results", body) if isinstance(body, dict) else body:
            if str(document.get("filename", "")).startswith(CANARY_FILENAME_PREFIX):
                client.delete(f"/api/v1/documents/{document['id']}/", timeout=self.http_timeout("cleanup-leftovers"))

    def upload(self, client: httpx.Client, marker: str) -> str:
        data = canary_pdf(marker)
        response = client.post("/api/v1/documents/", timeout=self.http_timeout("upload"),
                               files={"file": (f"{CANARY_FILENAME_PREFIX}{marker}.pdf", data, "application/pdf")})
        if response.status_code != 201:
            raise StepFailed("upload", f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()["document"]["id"]

    def wait_complete(self, client: httpx.Client, document_id: str) -> None:
        status, body = "unknown", {}
        interval = 0.2
        while time.monotonic() < self.deadline:
            response = client.get(f"/api/v1/documents/{document_id}/", timeout=self.http_timeout("process"))
            if response.status_code != 200:
                raise StepFailed("process", f"reading the canary answered HTTP {response.status_code}.")
            body = response.json()
            status = body.get("status", "unknown")
            if status in TERMINAL:
                break
            time.sleep(interval)
            interval = min(interval * 1.5, 2.0)
        if status == "complete":
            return
        if status in FAILED:
            job = body.get("job") or body.get("current_job") or {}
            error = job.get("last_error") or job.get("error") or body.get("error") or {}
            raise StepFailed("process", f"the canary ended '{status}': {error or 'see the job in the admin'}.")
        if status in TERMINAL:
            raise StepFailed("process", f"the canary ended '{status}' instead of 'complete'.")
        hint = (" No worker picked it up: is a qcluster running?" if status == "uploaded"
                else " Look for stuck jobs on /monitoring/.")
        raise StepFailed("process", f"the canary was still '{status}' when the {self.timeout:g}s budget ran "
                                    f"out.{hint}")

    def search(self, client: httpx.Client, document_id: str, marker: str) -> None:
        for mode in ("text", "vector"):
            response = client.post("/api/v1/search/", timeout=self.http_timeout("search"),
                                   json={"query": f"deployment canary {marker}", "k": 3, "mode": mode,
                                         "document_ids": [document_id]})
            if response.status_code != 200:
                raise StepFailed("search", f"{mode} search answered HTTP {response.status_code}: {response.text[:200]}")
            hits = response.json().get("results", [])
            if not any(hit.get("document_id") == document_id for hit in hits):
                raise StepFailed("search", f"{mode} search did not find the canary document.")

    def delete(self, client: httpx.Client, document_id: str) -> None:
        response = client.delete(f"/api/v1/documents/{document_id}/", timeout=self.http_timeout("delete"))
        if response.status_code != 204:
            raise StepFailed("delete", f"HTTP {response.status_code}: {response.text[:200]}")
        gone = client.get(f"/api/v1/documents/{document_id}/", timeout=self.http_timeout("delete"))
        if gone.status_code != 404:
            raise StepFailed("delete", f"the canary still answers HTTP {gone.status_code} after deletion.")
