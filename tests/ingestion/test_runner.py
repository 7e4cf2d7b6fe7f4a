"""The stage runner's claim, lease and failure paths, against the real database and the fakes over HTTP.

Another worker is played by the test itself: it locks or takes over the job row as a second
process would, while the runner works in a thread or waits on a slow fake.
"""
import threading
import time
from datetime import timedelta

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from ingestion import services, storage
from ingestion.models import Event, Job
from ingestion.pipeline.runner import _claim, backoff_seconds, lease_holder_is_dead, run_job_sync, run_stage
from ingestion.statuses import Status
from tests.sessions import when_seen

pytestmark = pytest.mark.django_db(transaction=True)


def _job_at(member, pdf_bytes, status=Status.UPLOADED, **fields):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    return Job.objects.get(pk=job.pk)


def _chunked_job(member, pdf_bytes):
    """A job parsed and chunked for real (local parser), waiting for its embed stage."""
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    for stage in ("parse", "validate", "chunk"):
        assert run_stage(job.id, stage) in (Status.PARSED, Status.PARSE_VALIDATED, Status.EMBEDDING_QUEUED)
    return Job.objects.get(pk=job.pk)


def _in_background(delay: float, action):
    def run():
        time.sleep(delay)
        try:
            action()
        finally:
            connection.close()
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_messages_for_missing_cancelled_or_finished_jobs_are_dropped(member, pdf_bytes):
    job = _job_at(member, pdf_bytes, status=Status.CANCELLED)
    assert run_stage(job.id, "parse") == "cancelled"
    assert run_stage("1b4e28ba-2fa1-11d2-883f-0016d3cca427", "parse") == "missing"
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETE)
    assert run_stage(job.id, "embed") == "not_due_for_stage"
    with pytest.raises(ValueError):
        run_stage(job.id, "index")


def test_a_job_leased_by_a_live_worker_is_left_alone(member, pdf_bytes):
    job = _job_at(member, pdf_bytes, lease_owner="other-host:1:1:abc",
                  lease_expires_at=timezone.now() + timedelta(seconds=30))
    assert run_stage(job.id, "parse") == "leased"
    job.refresh_from_db()
    assert job.lease_owner == "other-host:1:1:abc" and job.attempts == 0


def test_a_lease_held_by_a_killed_local_process_is_taken_over(providers, member, pdf_bytes, settings):
    # given a lease still within its time, held by a process of this host that no longer exists
    settings.PARSER_BACKEND = "local"
    import socket
    dead = f"{socket.gethostname()}:999999:1:abc"
    assert lease_holder_is_dead(dead) and not lease_holder_is_dead("other-host:1:1:abc")
    job = _job_at(member, pdf_bytes, lease_owner=dead, lease_expires_at=timezone.now() + timedelta(seconds=30))
    # when
    assert run_stage(job.id, "parse") == Status.PARSED
    # then the takeover is on record
    assert Event.objects.filter(job=job, type="stage_started", payload__recovered_lease=True).exists()


def test_a_stage_whose_worker_is_killed_every_time_fails_after_the_attempt_limit(member, pdf_bytes, settings):
    # given a parse stage claimed JOB_MAX_ATTEMPTS times by workers of this host that were then killed
    # (each claim is the real one; the process ids are of processes that no longer exist)
    import socket
    settings.JOB_MAX_ATTEMPTS = 3
    job = _job_at(member, pdf_bytes)
    for n in range(3):
        claimed, outcome = _claim(job.id, "parse", f"{socket.gethostname()}:999999:1:crash{n}")
        assert outcome == "claimed" and claimed.attempts == n + 1
    # when the sweeper's next wake-up arrives
    assert run_stage(job.id, "parse") == "interrupted_too_often"
    # then the job has failed with a reason, instead of being taken up again for ever
    job.refresh_from_db()
    assert job.status == Status.FAILED_PARSE and job.document.status == Status.FAILED_PARSE
    assert job.last_error_code == "STAGE_INTERRUPTED" and job.last_error_retryable is True  # dead-lettered
    assert "used its 3 attempts, and the last one stopped without finishing" in job.last_error_message
    assert job.lease_owner == ""
    assert Event.objects.filter(job=job, type="stage_failed", code="STAGE_INTERRUPTED").exists()
    assert run_stage(job.id, "parse") == "not_due_for_stage"


def test_the_lease_keeps_being_renewed_after_its_connection_breaks(providers, member, pdf_bytes, faults, settings):
    # given an embed stage that waits 5 s on the provider, with a 3 s lease renewed every second
    settings.JOB_LEASE_SECONDS = 3
    job = _chunked_job(member, pdf_bytes)
    faults("openai", latency_ms=5000)
    renewal = "UPDATE \"ingestion_job\" SET \"lease_expires_at\"%"

    def renewing_sessions() -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                           [renewal])
            return [row[0] for row in cursor.fetchall()]

    def break_them() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [renewing_sessions()])

    # when the renewing session's connection is cut once the first renewal has run
    cutter = when_seen(lambda: bool(renewing_sessions()), break_them)
    seen_alive_late = []
    checker = when_seen(lambda: Event.objects.filter(job=job, type="stage_started", stage="embed").exists(),
                        lambda: (time.sleep(4.2), seen_alive_late.append(
                            Job.objects.get(pk=job.pk).lease_expires_at > timezone.now())))
    outcome = run_stage(job.id, "embed")
    cutter.join(), checker.join()
    # then 4.2 s into the stage (past a lease not renewed since the cut) the lease was still held
    assert seen_alive_late == [True]
    assert outcome == Status.EMBEDDINGS_STORED


def test_a_row_locked_by_another_worker_is_busy(member, pdf_bytes):
    job = _job_at(member, pdf_bytes)
    s = connection.settings_dict
    other = psycopg2.connect(dbname=s["NAME"], user=s["USER"], host=s["HOST"], port=s["PORT"] or None,
                             password=s["PASSWORD"] or None)
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT id FROM ingestion_job WHERE id = %s FOR UPDATE", [str(job.pk)])
            assert run_stage(job.id, "parse") == "busy"
    finally:
        other.rollback()
        other.close()


def test_a_retry_that_is_not_due_yet_is_not_run(member, pdf_bytes):
    job = _job_at(member, pdf_bytes, next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert run_stage(job.id, "parse") == "retry_scheduled"


def test_backoff_grows_is_capped_and_honours_retry_after(settings):
    settings.RETRY_BASE_SECONDS, settings.RETRY_MAX_SECONDS = 1.0, 8.0
    assert 0.5 <= backoff_seconds(1) <= 1.0
    assert 4.0 <= backoff_seconds(4) <= 8.0
    assert 4.0 <= backoff_seconds(30) <= 8.0
    assert backoff_seconds(1, retry_after=20) == 20


def test_an_unexpected_crash_is_retried_with_a_clear_code(providers, member, pdf_bytes, settings):
    # given a chunk stage whose parsed pages vanished from storage
    settings.PARSER_BACKEND = "local"
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    run_stage(job.id, "parse")
    run_stage(job.id, "validate")
    storage.file_delete(Job.objects.get(pk=job.pk).document.parsed_path)
    # when
    assert run_stage(job.id, "chunk") == "retry_scheduled"
    # then
    job.refresh_from_db()
    assert job.last_error_code == "PIPELINE_INTERNAL_ERROR" and job.last_error_retryable
    assert "FileNotFoundError" in job.last_error_message and job.lease_owner == ""


def test_a_slow_parser_parks_the_job_without_using_an_attempt(providers, member, pdf_bytes, faults, settings):
    # given a parser that needs longer than the stage's poll window
    settings.PARSE_POLL_WINDOW_SECONDS = 0
    faults("llamaparse", parse_seconds=30)
    job = _job_at(member, pdf_bytes)
    # when
    assert run_stage(job.id, "parse") == "parse_pending"
    # then the job waits in parse_queued with its parser job id, free for the sweeper or the webhook
    job.refresh_from_db()
    assert job.status == Status.PARSE_QUEUED and job.parse_job_id and job.attempts == 0
    assert job.lease_owner == "" and job.next_attempt_at > timezone.now()
    assert Event.objects.filter(job=job, type="parse_waiting").exists()


def test_a_job_cancelled_while_its_stage_runs_stays_cancelled(providers, member, pdf_bytes, faults, settings):
    settings.PARSER_BACKEND = "local"
    job = _chunked_job(member, pdf_bytes)
    faults("openai", latency_ms=1500)
    canceller = _in_background(0.3, lambda: services.job_cancel(job=Job.objects.get(pk=job.pk)))
    assert run_stage(job.id, "embed") == Status.CANCELLED
    canceller.join()
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.lease_owner == ""


def test_a_failure_after_cancellation_keeps_the_job_cancelled(providers, member, pdf_bytes, faults, settings):
    settings.PARSER_BACKEND = "local"
    settings.OPENAI_SDK_MAX_RETRIES = 0
    job = _chunked_job(member, pdf_bytes)
    faults("openai", latency_ms=1500, error_rate=1.0)
    canceller = _in_background(0.3, lambda: services.job_cancel(job=Job.objects.get(pk=job.pk)))
    assert run_stage(job.id, "embed") == Status.CANCELLED
    canceller.join()
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.lease_owner == "" and job.next_attempt_at is None
    assert not Event.objects.filter(job=job, type="retry_scheduled").exists()


@pytest.mark.parametrize("error_rate", [0.0, 1.0])
def test_a_worker_whose_lease_was_taken_over_discards_its_result(providers, member, pdf_bytes, faults, settings,
                                                                 error_rate):
    # given an embed stage slowed down by the provider, and another worker taking the job over meanwhile
    settings.PARSER_BACKEND = "local"
    settings.OPENAI_SDK_MAX_RETRIES = 0
    job = _chunked_job(member, pdf_bytes)
    faults("openai", latency_ms=1500, error_rate=error_rate)
    thief = _in_background(0.3, lambda: Job.objects.filter(pk=job.pk).update(lease_owner="other-host:2:2:xyz"))
    # when
    outcome = run_stage(job.id, "embed")
    thief.join()
    # then neither its success nor its failure is recorded over the new holder's work
    assert outcome == "lease_lost"
    job.refresh_from_db()
    assert job.status == Status.EMBEDDING_IN_PROGRESS and job.lease_owner == "other-host:2:2:xyz"
    assert not Event.objects.filter(job=job, stage="embed").exclude(type="stage_started").exists()


def test_sync_run_waits_for_another_workers_lease_to_end(providers, member, pdf_bytes, settings):
    settings.PARSER_BACKEND = "local"
    job = _job_at(member, pdf_bytes, lease_owner="other-host:1:1:abc",
                  lease_expires_at=timezone.now() + timedelta(seconds=1))
    assert run_job_sync(job.id) == Status.COMPLETE
    assert Event.objects.filter(job=job, type="stage_started", stage="parse", payload__recovered_lease=True).exists()


def test_the_parsers_webhook_wakes_the_polling_worker(providers, member, pdf_bytes, faults, settings):
    # given a parser that takes a moment, and polls so rare that only the webhook can end the wait soon
    settings.PARSE_POLL_FIRST_INTERVAL_SECONDS = settings.PARSE_POLL_MAX_INTERVAL_SECONDS = 60
    faults("llamaparse", parse_seconds=1.5)
    job = _job_at(member, pdf_bytes)
    # when
    assert run_stage(job.id, "parse") == Status.PARSED
    # then the worker was woken by the webhook rather than by its next poll
    assert Event.objects.filter(job=job, type="webhook_received").exists()
    assert Event.objects.filter(job=job, type="parse_webhook_wake").exists()
