"""A real browser (the system's headless Chromium, driven by Playwright) on the dashboard and the admin.

Screenshots go to test-artifacts/browser/ for a person to look at; any console error fails the test.
"""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow,
              pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                 reason=f"no Chromium at {CHROMIUM}: install it with "
                                        "'apt-get install -y chromium chromium-driver' (.ci/run does)")]


@pytest.fixture
def browser(monkeypatch):
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls made meanwhile are ours.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def pipeline_data(make_job, make_event, now):
    """A few complete and failed jobs with events, and one stuck job, so every panel has something to draw."""
    done = []
    for index, seconds in enumerate((4, 9, 15, 30)):
        job = make_job("complete", created_ago=3000 - index * 400, finished_ago=1500 - index * 300, page_count=12,
                       tokens_embedded=40_000, parse_job_id=f"lp-{index}", chunk_count=20,
                       stage_times={"parse": {"finished": "x"}}, filename=f"evidence-of-coverage-{index}.pdf")
        for stage, offset in (("parse", seconds), ("chunk", 1), ("embed", 3)):
            make_event(job, "stage_started", stage=stage, ago=1600 - index * 300)
            make_event(job, "stage_finished", stage=stage, ago=1600 - index * 300 - offset,
                       payload={"provider_calls": 2})
        done.append(job)
    failed = make_job("failed_parse", created_ago=900, finished_ago=800, last_error_code="PARSE_ENCRYPTED_PDF",
                      last_error_message="The PDF is password-protected. Remove the password and upload it again.",
                      filename="denial-letter.pdf")
    make_event(failed, "stage_started", stage="parse", ago=890)
    make_event(failed, "stage_failed", stage="parse", ago=880, code="PARSE_ENCRYPTED_PDF")
    make_job("chunking", created_ago=400, lease_owner="gone", lease_expires_at=now - timedelta(seconds=90),
             filename="summary-of-benefits.pdf")
    return failed


def watch_console(page) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def test_staff_sees_the_dashboard_and_a_job_in_the_admin_without_console_errors(browser, live_server, providers,
                                                                               pipeline_data):
    # given a staff operator
    get_user_model().objects.create_user("operator", password="operator-pw-1", is_staff=True, is_superuser=True)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = watch_console(page)
    # when they log in and land on the dashboard
    page.goto(f"{live_server.url}/monitoring/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "operator-pw-1")
    page.click("input[type=submit]")
    page.wait_for_url("**/monitoring/")
    # then every panel is there, charts included
    for panel in ("overview", "throughput", "statuses", "latency", "failures", "workers", "providers", "stuck",
                  "recent-failures", "cost", "alerts"):
        assert page.locator(f"section#{panel}").is_visible(), panel
    assert page.locator("svg.chart").count() >= 5
    assert page.get_by_text("PARSE_ENCRYPTED_PDF").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    # when they follow the failed job's link into the admin
    page.locator(f"a[href$='/admin/ingestion/job/{pipeline_data.pk}/change/']").first.click()
    page.wait_for_url(f"**/admin/ingestion/job/{pipeline_data.pk}/change/")
    # then the job shows its timeline
    assert page.get_by_text("stage_failed").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "admin-job.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/ingestion/job/")
    page.screenshot(path=str(ARTIFACTS / "admin-jobs.png"), full_page=True)
    assert errors == []


def test_a_member_who_is_not_staff_is_refused_the_dashboard(browser, live_server):
    # given a signed-in member without staff rights (session cookie from a real login)
    member = get_user_model().objects.create_user("member", password="member-pw-1")
    client = Client()
    client.force_login(member)
    context = browser.new_context()
    context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME,
                          "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                          "url": live_server.url}])
    page = context.new_page()
    # when they open the dashboard
    response = page.goto(f"{live_server.url}/monitoring/")
    # then it is refused and shows none of its panels
    assert response.status == 403
    assert page.locator("section#overview").count() == 0
    page.screenshot(path=str(ARTIFACTS / "dashboard-refused.png"))
