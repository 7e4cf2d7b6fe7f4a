from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import OrmQ

from ingestion import services, tasks
from ingestion.models import Document, Job, WorkerHeartbeat
from ingestion.statuses import Status

pytestmark = pytest.mark.django_db(transaction=True)


def test_ingest_sync_processes_files_and_prints_a_table(providers, tmp_path, pdf_bytes):
    (tmp_path / "policy.pdf").write_bytes(pdf_bytes)
    out = StringIO()
    call_command("ingest", str(tmp_path), "--user", "casey", "--sync", stdout=out)
    document = Document.objects.get(owner__username="casey")
    assert document.status == Status.COMPLETE
    assert "policy.pdf" in out.getvalue() and "complete" in out.getvalue()


def test_ingest_reports_bad_files_and_exits_non_zero(providers, tmp_path):
    (tmp_path / "not-a-pdf.pdf").write_bytes(b"Sample Insurance Policy\nPolicy Number: INS-12345\n")
    out = StringIO()
    with pytest.raises(CommandError, match="did not complete"):
        call_command("ingest", str(tmp_path / "not-a-pdf.pdf"), "--sync", stdout=out)
    assert "failed_parse" in out.getvalue() and "PARSE_NOT_A_PDF" in out.getvalue()


def test_ingest_without_waiting_still_exits_non_zero_when_a_file_is_refused(providers, tmp_path, pdf_bytes):
    (tmp_path / "not-a-pdf.pdf").write_bytes(b"Sample Insurance Policy\n")
    (tmp_path / "policy.pdf").write_bytes(pdf_bytes)
    out = StringIO()
    with pytest.raises(CommandError, match="refused"):
        call_command("ingest", str(tmp_path), stdout=out)
    assert "PARSE_NOT_A_PDF" in out.getvalue() and Document.objects.count() == 1  # the good one was queued


def test_ingest_wait_without_a_qcluster_says_so(providers, tmp_path, pdf_bytes):
    (tmp_path / "policy.pdf").write_bytes(pdf_bytes)
    with pytest.raises(CommandError, match="No qcluster is running"):
        call_command("ingest", str(tmp_path / "policy.pdf"), "--wait", "--cluster-wait", "1", stdout=StringIO())


def test_sweeper_re_enqueues_a_job_whose_worker_died(member, pdf_bytes):
    # given a job leased by a worker whose lease ran out
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    OrmQ.objects.all().delete()
    Job.objects.filter(pk=job.pk).update(status=Status.CHUNKING, lease_owner="dead-worker",
                                         lease_expires_at=timezone.now() - timedelta(seconds=5))
    # when the sweeper runs
    counts = tasks.sweep()
    # then a wake-up for the chunk stage is queued
    assert counts["chunk"] == 1 and OrmQ.objects.count() == 1


def test_sweeper_leaves_healthy_and_finished_jobs_alone(member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    Job.objects.filter(pk=job.pk).update(lease_owner="live", lease_expires_at=timezone.now() + timedelta(minutes=1))
    assert sum(tasks.sweep().values()) == 0


def test_heartbeat_records_the_worker(db):
    tasks.heartbeat()
    assert WorkerHeartbeat.objects.count() == 1


def test_a_worker_starting_any_task_is_a_heartbeat_at_most_every_15_seconds(db, monkeypatch):
    from django_q.signals import pre_execute

    from monitoring import signals

    # a busy cluster whose scheduled heartbeat waits behind pipeline tasks still shows it executes tasks
    monkeypatch.setattr(signals, "_last_task_heartbeat", 0.0)
    pre_execute.send(sender="django_q", func=tasks.run_stage, task={})
    first = WorkerHeartbeat.objects.get().seen_at
    pre_execute.send(sender="django_q", func=tasks.run_stage, task={})
    assert WorkerHeartbeat.objects.get().seen_at == first  # not a write per task


def test_a_wake_up_for_a_briefly_locked_job_is_not_dropped(member, pdf_bytes, settings):
    import psycopg2
    from django.db import connection

    settings.PARSER_BACKEND = "local"
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    s = connection.settings_dict
    other = psycopg2.connect(dbname=s["NAME"], user=s["USER"], host=s["HOST"], port=s["PORT"] or None,
                             password=s["PASSWORD"] or None)
    try:
        with other.cursor() as cursor:  # another transaction holds the row for longer than the claim retries
            cursor.execute("SELECT id FROM ingestion_job WHERE id = %s FOR UPDATE", [str(job.pk)])
            OrmQ.objects.all().delete()
            assert tasks.run_stage(str(job.pk), "parse") == "busy_requeued"
        assert OrmQ.objects.count() == 1  # the wake-up was sent again, not lost
    finally:
        other.rollback()
        other.close()
    assert tasks.run_stage(str(job.pk), "parse") == Status.PARSED
