"""`pipeline_status` prints the dashboard's numbers in the terminal."""
from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_pipeline_status_prints_workers_backlog_failures_stuck_jobs_and_cost(make_job, make_event, now, settings):
    # given a failed job, a stuck job, a finished parse of 12 s and one parsed job's cost
    settings.PARSE_PRICE_PER_PAGE_USD = 0.01
    make_job("failed_parse", finished_ago=60, last_error_code="PARSE_ENCRYPTED_PDF", last_error_message="Locked.")
    stuck = make_job("chunking", created_ago=300, lease_owner="gone", lease_expires_at=now - timedelta(seconds=30))
    done = make_job("complete", finished_ago=30, page_count=10, parse_job_id="lp", stage_times={"parse": {"finished": "x"}})
    make_event(done, "stage_started", stage="parse", ago=100)
    make_event(done, "stage_finished", stage="parse", ago=88)
    out = StringIO()
    # when
    call_command("pipeline_status", "--no-probe", stdout=out)
    # then
    text = out.getvalue()
    assert "DOWN" in text
    assert "1 waiting, 0 running" in text
    assert "2 ended, 1 failed (50%)" in text
    assert "PARSE_ENCRYPTED_PDF" in text and str(stuck.pk) in text and "lease_expired" in text
    assert "12.0 s" in text  # parse p50
    assert "$0.1000" in text  # 10 pages at $0.01
