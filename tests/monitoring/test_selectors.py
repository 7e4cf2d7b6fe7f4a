"""Every number behind the dashboard, on rows with known values and times."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from model_bakery import baker

from ingestion.models import Document, Job, WorkerHeartbeat
from monitoring import selectors

pytestmark = pytest.mark.django_db


def test_documents_and_jobs_by_status_count_every_status_including_zero(make_job):
    # given
    for _ in range(3):
        make_job("complete")
    make_job("failed_parse")
    make_job("failed_parse")
    make_job("uploaded")
    # when
    documents = selectors.documents_by_status()
    jobs = selectors.jobs_by_status()
    # then
    assert documents["complete"] == 3 and documents["failed_parse"] == 2 and documents["uploaded"] == 1
    assert documents["cancelled"] == 0 and len(documents) == 15
    assert jobs == documents


def test_throughput_puts_ended_jobs_in_their_minute_and_keeps_empty_minutes(make_job, now):
    # given two jobs that completed this minute, one that failed three minutes ago, one still running
    minute = now.replace(second=0, microsecond=0)
    age_in_minute = (now - minute).total_seconds()
    make_job("complete", finished_ago=age_in_minute * 0.5)
    make_job("complete", finished_ago=age_in_minute * 0.2)
    make_job("failed_embedding", finished_ago=age_in_minute + 180)
    make_job("chunking")
    # when
    buckets = selectors.throughput(bucket="minute", buckets=10, now=now)
    # then
    assert len(buckets) == 10 and buckets[-1].start == minute
    assert (buckets[-1].complete, buckets[-1].failed) == (2, 0)
    assert buckets[-4].start == minute - timedelta(minutes=3)
    assert (buckets[-4].complete, buckets[-4].failed) == (0, 1)
    assert sum(b.complete + b.failed for b in buckets) == 3


def test_stage_latency_runs_from_the_first_start_to_finish_with_percentiles(make_job, make_event):
    # given parse took 10 s for one job and 30 s (two attempts) for another; chunk 2 s once
    fast, slow = make_job(), make_job()
    make_event(fast, "stage_started", stage="parse", ago=100)
    make_event(fast, "stage_finished", stage="parse", ago=90)
    make_event(slow, "stage_started", stage="parse", ago=100)
    make_event(slow, "retry_scheduled", stage="parse", ago=95, code="PARSE_PROVIDER_TIMEOUT")
    make_event(slow, "stage_started", stage="parse", ago=90)
    make_event(slow, "stage_finished", stage="parse", ago=70)
    make_event(slow, "stage_started", stage="chunk", ago=60)
    make_event(slow, "stage_finished", stage="chunk", ago=58)
    # when
    latency = {row.stage: row for row in selectors.stage_latency(since=timezone.now() - timedelta(hours=1))}
    # then p50 is the middle of 10 and 30, p95 interpolates between them
    assert latency["parse"].count == 2
    assert latency["parse"].p50 == pytest.approx(20, abs=0.01)
    assert latency["parse"].p95 == pytest.approx(29, abs=0.01)
    assert latency["parse"].max == pytest.approx(30, abs=0.01)
    assert latency["chunk"].count == 1 and latency["chunk"].p50 == pytest.approx(2, abs=0.01)
    assert latency["embed"].count == 0 and latency["embed"].p50 is None


def test_stage_latency_ignores_stages_finished_before_the_window(make_job, make_event):
    job = make_job()
    make_event(job, "stage_started", stage="parse", ago=7200)
    make_event(job, "stage_finished", stage="parse", ago=7100)
    latency = {row.stage: row for row in selectors.stage_latency(since=timezone.now() - timedelta(hours=1))}
    assert latency["parse"].count == 0


def test_stage_duration_histogram_is_cumulative_per_bucket(make_job, make_event):
    # given parse runs of 10 s and 30 s
    for seconds in (10, 30):
        job = make_job()
        make_event(job, "stage_started", stage="parse", ago=100)
        make_event(job, "stage_finished", stage="parse", ago=100 - seconds)
    # when
    (parse,) = selectors.stage_duration_histograms(buckets=(5, 10, 60))
    # then
    assert parse.stage == "parse" and parse.count == 2 and parse.sum == pytest.approx(40, abs=0.01)
    assert parse.buckets == [(5, 0), (10, 1), (60, 2), (float("inf"), 2)]


def test_failure_summary_rates_ended_jobs_and_groups_codes(make_job):
    # given 3 complete and 3 failed jobs in the window, one failure outside it, one running job
    for _ in range(3):
        make_job("complete", finished_ago=60)
    make_job("failed_parse", finished_ago=60, last_error_code="PARSE_ENCRYPTED_PDF")
    make_job("failed_parse", finished_ago=120, last_error_code="PARSE_ENCRYPTED_PDF")
    make_job("failed_embedding", finished_ago=30, last_error_code="EMBED_RATE_LIMITED")
    make_job("failed_parse", finished_ago=7200, last_error_code="PARSE_NOT_A_PDF")
    make_job("embedding_in_progress")
    # when
    summary = selectors.failure_summary(since=timezone.now() - timedelta(hours=1))
    # then
    assert (summary.ended, summary.failed) == (6, 3)
    assert summary.rate == pytest.approx(0.5)
    assert summary.by_code == [("PARSE_ENCRYPTED_PDF", 2), ("EMBED_RATE_LIMITED", 1)]


def test_backlog_counts_waiting_and_running_jobs_and_the_oldest_waiting_age(make_job, now):
    # given two waiting jobs (600 s and 60 s old), one running under a live lease (900 s old), one done
    make_job("uploaded", created_ago=600)
    make_job("embedding_queued", created_ago=60)
    make_job("chunking", created_ago=900, lease_owner="w1", lease_expires_at=now + timedelta(seconds=30))
    make_job("complete", created_ago=5000, finished_ago=4000)
    # when
    backlog = selectors.backlog(now=now)
    # then
    assert (backlog.waiting, backlog.running) == (2, 1)
    assert backlog.oldest_age_seconds == pytest.approx(600, abs=1)


def test_a_job_waiting_on_purpose_is_not_late_until_its_time_comes(make_job, now):
    # given a parse parked to poll the parser again in 10 s, and a retry whose backoff ended 30 s ago,
    # both of documents uploaded long ago
    make_job("parse_queued", created_ago=2000, next_attempt_at=now + timedelta(seconds=10))
    due = make_job("embedding_queued", created_ago=2500, next_attempt_at=now - timedelta(seconds=30))
    # then both wait, and the oldest wait is the retry's 30 s, not the uploads' age
    backlog = selectors.backlog(now=now)
    assert backlog.waiting == 2
    assert backlog.oldest_age_seconds == pytest.approx(30, abs=1) and backlog.oldest_job_id == str(due.pk)


def test_backlog_of_an_idle_pipeline_is_empty(make_job, now):
    make_job("complete", finished_ago=10)
    backlog = selectors.backlog(now=now)
    assert (backlog.waiting, backlog.running, backlog.oldest_age_seconds) == (0, 0, None)


def test_a_job_whose_lease_expired_is_waiting_and_stuck(make_job, now):
    # given a worker took the job and died: its lease ran out a minute ago
    job = make_job("chunking", created_ago=300, lease_owner="dead-worker", lease_expires_at=now - timedelta(seconds=60))
    # then it waits again and is listed as stuck with the reason
    assert selectors.backlog(now=now).waiting == 1
    stuck = selectors.stuck_jobs(now=now)
    assert [(s.job.pk, s.reason) for s in stuck] == [(job.pk, "lease_expired")]


def test_stuck_jobs_name_each_reason_and_skip_healthy_jobs(make_job, now, settings):
    settings.WEBHOOK_OVERDUE_SECONDS = 600
    settings.SWEEP_LOST_MESSAGE_SECONDS = 120
    # given one job per stuck reason and two healthy ones
    overdue = make_job("parse_queued", created_ago=1200, updated_ago=10, parse_job_id="lp-1",
                       next_attempt_at=now + timedelta(seconds=5))
    retry = make_job("embedding_queued", created_ago=400, next_attempt_at=now - timedelta(minutes=5))
    lost = make_job("parse_validated", created_ago=400, updated_ago=300)
    make_job("parse_queued", created_ago=30, parse_job_id="lp-2", next_attempt_at=now + timedelta(seconds=5))
    make_job("chunking", created_ago=100, lease_owner="w", lease_expires_at=now + timedelta(seconds=50))
    # when
    reasons = {s.job.pk: s.reason for s in selectors.stuck_jobs(now=now)}
    # then
    assert reasons == {overdue.pk: "parser_overdue", retry.pk: "retry_overdue", lost.pk: "message_lost"}


def test_recent_failures_and_dead_lettered_jobs(make_job):
    make_job("failed_embedding", finished_ago=30, last_error_code="EMBED_RATE_LIMITED", last_error_retryable=True)
    make_job("failed_parse", finished_ago=10, last_error_code="PARSE_NOT_A_PDF", last_error_retryable=False)
    make_job("complete", finished_ago=5)
    failures = selectors.recent_failures(limit=5)
    assert [job.last_error_code for job in failures] == ["PARSE_NOT_A_PDF", "EMBED_RATE_LIMITED"]
    assert selectors.dead_lettered_count() == 1


def test_a_dead_lettered_job_whose_document_was_retried_no_longer_counts(make_job):
    old = make_job("failed_embedding", finished_ago=30, last_error_code="EMBED_RATE_LIMITED", last_error_retryable=True)
    assert selectors.dead_lettered_count() == 1
    newer = baker.make(Job, document=old.document, status="complete")
    Document.objects.filter(pk=old.document_id).update(current_job=newer)
    assert selectors.dead_lettered_count() == 0


def test_provider_calls_count_successes_from_finished_stages_and_failures_by_code(make_job, make_event):
    # given parse made 3 calls and embed 2 + 4 in finished stages; embed was rate-limited twice;
    # a parse call timed out for good; a document error (not a provider's) is not a provider failure
    job = make_job()
    make_event(job, "stage_finished", stage="parse", payload={"provider_calls": 3})
    make_event(job, "stage_finished", stage="embed", payload={"provider_calls": 2})
    make_event(job, "stage_finished", stage="embed", payload={"provider_calls": 4})
    make_event(job, "stage_finished", stage="chunk", payload={"provider_calls": 0})
    make_event(job, "retry_scheduled", stage="embed", code="EMBED_RATE_LIMITED")
    make_event(job, "retry_scheduled", stage="embed", code="EMBED_RATE_LIMITED")
    make_event(job, "stage_failed", stage="parse", code="PARSE_PROVIDER_TIMEOUT")
    make_event(job, "stage_failed", stage="parse", code="PARSE_ENCRYPTED_PDF")
    make_event(job, "retry_scheduled", stage="parse", code="PARSE_PROVIDER_UNREACHABLE")  # connection refused
    make_event(job, "stage_failed", stage="embed", code="EMBED_QUOTA_EXCEEDED")
    # when
    calls = {c.provider: c for c in selectors.provider_calls()}
    # then
    assert (calls["llamaparse"].ok, calls["llamaparse"].failed) == (3, 2)
    assert calls["llamaparse"].by_code == {"PARSE_PROVIDER_TIMEOUT": 1, "PARSE_PROVIDER_UNREACHABLE": 1}
    assert (calls["openai"].ok, calls["openai"].failed) == (6, 3)
    assert calls["openai"].error_rate == pytest.approx(3 / 9)


def test_retries_are_counted_by_stage_and_code(make_job, make_event):
    job = make_job()
    make_event(job, "retry_scheduled", stage="embed", code="EMBED_RATE_LIMITED")
    make_event(job, "retry_scheduled", stage="embed", code="EMBED_RATE_LIMITED")
    make_event(job, "retry_scheduled", stage="parse", code="PARSE_PROVIDER_ERROR")
    assert selectors.retries() == [("embed", "EMBED_RATE_LIMITED", 2), ("parse", "PARSE_PROVIDER_ERROR", 1)]


def test_job_cost_estimate_prices_parsed_pages_and_embedded_tokens(make_job, settings):
    settings.PARSE_PRICE_PER_PAGE_USD = 0.003
    settings.EMBED_PRICE_PER_MILLION_TOKENS_USD = 0.02
    # given a job LlamaParse parsed (10 pages) that embedded 500k tokens
    parsed = make_job(page_count=10, tokens_embedded=500_000, parse_job_id="lp-1",
                      stage_times={"parse": {"started": "x", "finished": "y"}})
    # and a reprocess from the embed stage: nothing parsed
    reembedded = make_job(page_count=10, tokens_embedded=1_000_000, start_stage="embed")
    # and a job still waiting on the parser: not billed yet
    waiting = make_job("parse_queued", page_count=10, parse_job_id="lp-2", stage_times={"parse": {"started": "x"}})
    # then
    assert selectors.job_cost_estimate(parsed) == Decimal("0.040000")
    assert selectors.job_cost_estimate(reembedded) == Decimal("0.020000")
    assert selectors.job_cost_estimate(waiting) == Decimal("0")


def test_cost_per_day_adds_up_each_days_jobs(make_job, settings, now):
    settings.PARSE_PRICE_PER_PAGE_USD = 0.01
    settings.EMBED_PRICE_PER_MILLION_TOKENS_USD = 1.0
    parsed = {"parse": {"finished": "y"}}
    make_job(created_ago=0, page_count=5, tokens_embedded=1_000_000, parse_job_id="a", stage_times=parsed)
    make_job(created_ago=0, page_count=3, tokens_embedded=0, parse_job_id="b", stage_times=parsed)
    make_job(created_ago=2 * 86400, page_count=100, tokens_embedded=0, parse_job_id="c", stage_times=parsed)
    days = selectors.cost_per_day(days=3, now=now)
    assert [d.day for d in days] == [(now - timedelta(days=n)).date() for n in (2, 1, 0)]
    assert (days[-1].jobs, days[-1].pages, days[-1].tokens, days[-1].usd) == (2, 8, 1_000_000, Decimal("1.080000"))
    assert (days[1].jobs, days[1].usd) == (0, Decimal("0"))
    assert (days[0].pages, days[0].usd) == (100, Decimal("1.000000"))


def test_worker_status_reports_the_freshest_heartbeat_and_no_live_cluster(db, now):
    baker.make(WorkerHeartbeat, worker="host:1", seen_at=now - timedelta(seconds=200))
    baker.make(WorkerHeartbeat, worker="host:2", seen_at=now - timedelta(seconds=20))
    status = selectors.worker_status(now=now)
    assert [w for w, _, _ in status.heartbeats] == ["host:2", "host:1"]
    assert status.last_seen_age == pytest.approx(20, abs=1)
    assert status.clusters == [] and not status.healthy


def test_queue_depth_counts_broker_messages(db):
    from django_q.tasks import async_task

    async_task("math.floor", 1.5)
    async_task("math.floor", 2.5)
    assert selectors.queue_depth() == {"queued": 2, "in_flight": 0}
