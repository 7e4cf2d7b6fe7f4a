"""Nothing lost, nothing twice: real qcluster processes, the fakes over HTTP, faults and a killed cluster.

Each test is bounded (it gives up with a clear failure after its deadline) and stops every process
it started.
"""
from __future__ import annotations

import importlib
import threading
import time
from collections import Counter

import httpx
import pytest
from django.apps import apps as django_apps
from django.db import close_old_connections, connection
from django.utils import timezone
from fpdf import FPDF
from rest_framework.authtoken.models import Token

from fakes import tally
from ingestion import services
from ingestion.models import Chunk, Document, Event, Job
from ingestion.statuses import STAGE_ORDER, STAGES, TERMINAL, Status
from samples.generate import build_document
from tests.clusters import QCluster

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ENDINGS = {"stage_finished", "retry_scheduled", "stage_failed", "parse_waiting"}
# Fast retries so a bounded test sees many of them; every other setting is the default.
CLUSTER_ENV = {"RETRY_BASE_SECONDS": 0.2, "RETRY_MAX_SECONDS": 3, "JOB_MAX_ATTEMPTS": 15}


def corpus(count: int, bad: int) -> list[tuple[str, bytes]]:
    """``count`` generated policies of 1-40 pages, and ``bad`` PDFs without any text."""
    files = [(f"policy-{i:02d}.pdf", build_document(1 + (i * 13) % 40, seed=100 + i)) for i in range(count)]
    for i in range(bad):
        pdf = FPDF()
        pdf.add_page()
        pdf.rect(20 + i, 20, 50, 50)
        files.append((f"scan-{i}.pdf", bytes(pdf.output())))
    return files


@pytest.fixture
def schedules(db):
    """The sweeper and heartbeat schedules (the transactional tests before this one flushed them)."""
    for name in ("0002_schedules_and_cache", "0003_sweeper_every_half_minute"):
        module = importlib.import_module(f"ingestion.migrations.{name}")
        (getattr(module, "create_schedules", None) or module.create_schedule)(django_apps, None)


@pytest.fixture(autouse=True)
def bulk_uploads(settings):
    """These tests upload dozens of documents at once as one member: lift the per-member API limits."""
    settings.API_MAX_ACTIVE_JOBS = settings.API_UPLOADS_PER_DAY = 100_000


@pytest.fixture
def clusters(providers, tmp_path, schedules):
    started: list[QCluster] = []

    def start(**env) -> QCluster:
        cluster = QCluster(providers.url, tmp_path / f"qcluster-{len(started)}.log", **{**CLUSTER_ENV, **env}).start()
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()
    for cluster in started:
        print(f"--- {cluster.log_path.name}\n{cluster.log_tail(1500)}")


def api_client(base_url: str, user) -> httpx.Client:
    token, _ = Token.objects.get_or_create(user=user)
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Token {token.key}"}, timeout=60)


def upload_all(client: httpx.Client, files) -> dict[str, str]:
    ids = {}
    for name, data in files:
        response = client.post("/api/v1/documents/", files={"file": (name, data, "application/pdf")})
        assert response.status_code == 201, response.text
        ids[name] = response.json()["document"]["id"]
    return ids


def wait_until_terminal(owner, deadline: float, on_tick=None) -> None:
    while time.monotonic() < deadline:
        close_old_connections()
        try:
            pending = Document.objects.filter(owner=owner).exclude(status__in=TERMINAL).count()
        except Exception:  # the database is restarting
            connection.close()
            time.sleep(0.5)
            continue
        if pending == 0:
            return
        if on_tick:
            on_tick()
        time.sleep(0.25)
    raise AssertionError("documents still processing at the deadline: " + ", ".join(
        f"{d.filename}={d.status}" for d in Document.objects.filter(owner=owner).exclude(status__in=TERMINAL)))


def overlapping_stage_runs(job_ids) -> list[str]:
    """Starts of a stage of a job while an earlier run of that stage had not ended (and was not dead)."""
    running: dict[tuple, bool] = {}
    overlaps = []
    for event in Event.objects.filter(job_id__in=job_ids, type__in=ENDINGS | {"stage_started"}).order_by("created_at", "id"):
        key = (event.job_id, event.stage)
        if event.type == "stage_started":
            if running.get(key) and not event.payload.get("recovered_lease"):
                overlaps.append(f"{event.job_id}:{event.stage} at {event.created_at}")
            running[key] = True
        else:
            running[key] = False
    return overlaps


def assert_nothing_lost_or_twice(owner, expected_chunks: dict[str, int], bad_names: set[str]) -> dict:
    documents = list(Document.objects.filter(owner=owner).select_related("current_job"))
    lost = [d.filename for d in documents if d.status != Status.COMPLETE and d.filename not in bad_names]
    wrongly_failed = [d.filename for d in documents if d.filename in bad_names and d.status != Status.FAILED_PARSE]
    chunk_counts = Counter(Chunk.objects.filter(owner=owner).values_list("document__filename", flat=True))
    duplicated = {name: n for name, n in chunk_counts.items() if n != expected_chunks.get(name, 0)}
    assert not lost and not wrongly_failed, (lost, wrongly_failed)
    assert not duplicated, duplicated
    assert not Chunk.objects.filter(owner=owner, vector__isnull=True).exists()
    jobs = Job.objects.filter(document__owner=owner)
    assert not jobs.exclude(lease_owner="").exists(), "a job is still leased"
    assert not jobs.exclude(status__in=TERMINAL).exists(), "a job did not end"
    assert not overlapping_stage_runs(list(jobs.values_list("id", flat=True)))
    for d in documents:
        if d.filename in bad_names:
            assert d.current_job.last_error_code == "PARSE_NO_TEXT"
    return {"lost": len(lost), "duplicated": len(duplicated)}


def test_two_clusters_never_run_the_same_stage_of_a_job_at_once(providers, clusters, member, settings):
    # given two clusters of three workers each, and every wake-up message sent three times over
    for _ in range(2):
        clusters(QCLUSTER_WORKERS=3)
    settings.PARSER_BACKEND = "llamaparse"
    files = corpus(10, bad=0)
    with api_client(providers.url, member) as client:
        upload_all(client, files)

    def duplicate_messages():
        for job_id, status in Job.objects.filter(document__owner=member).exclude(status__in=TERMINAL).values_list(
                "id", "status"):
            stage = next(name for name in STAGE_ORDER if status in STAGES[name].entry)
            for _ in range(2):
                services.job_enqueue(job_id=job_id, stage=stage)  # outside a transaction: sent at once

    # when
    wait_until_terminal(member, time.monotonic() + 120, on_tick=duplicate_messages)
    # then each stage of each job ran once, never two at a time, and nothing was stored twice
    jobs = Job.objects.filter(document__owner=member)
    finished = Counter(Event.objects.filter(job__in=jobs, type="stage_finished").values_list("job_id", "stage"))
    assert set(finished.values()) == {1} and len(finished) == 5 * len(files)
    from django_q.models import Task
    outcomes = Counter(str(task.result) for task in Task.objects.filter(func="ingestion.tasks.run_stage"))
    assert outcomes["busy"] + outcomes["leased"] + outcomes["not_due_for_stage"] > 0, outcomes
    expected = {name: Job.objects.get(document__owner=member, document__filename=name).chunk_count for name, _ in files}
    result = assert_nothing_lost_or_twice(member, expected, set())
    print(f"\nconcurrency: documents={len(files)} stage runs={len(finished)} messages={sum(outcomes.values())} "
          f"dropped busy={outcomes['busy']} leased={outcomes['leased']} not due={outcomes['not_due_for_stage']} "
          f"lost={result['lost']} duplicated={result['duplicated']}")


def test_chaos_faults_and_a_killed_cluster_lose_nothing(providers, clusters, member, other_member, faults):
    files = corpus(30, bad=2)
    bad_names = {name for name, _ in files if name.startswith("scan-")}

    # a fault-free run first: the reference for chunk counts and provider calls
    started, since = time.monotonic(), timezone.now()
    baseline_clusters = [clusters(), clusters()]
    with api_client(providers.url, member) as client:
        upload_all(client, files)
    wait_until_terminal(member, time.monotonic() + 180)
    expected = dict(Document.objects.filter(owner=member).values_list("filename", "current_job__chunk_count"))
    assert_nothing_lost_or_twice(member, expected, bad_names)
    baseline_calls = tally.provider_calls(tally.snapshot(since))
    baseline_seconds = time.monotonic() - started
    for cluster in baseline_clusters:
        cluster.stop()
    started = time.monotonic()

    # the same documents again for another member, under faults; the first member's documents go, or their
    # stored vectors would be lent to the same texts and hide the provider
    for document in Document.objects.filter(owner=member):
        services.document_delete(document=document)
    since = timezone.now()
    knobs = {"error_rate": 0.2, "rate_limit_rate": 0.1, "retry_after_seconds": 1, "latency_ms": 5, "jitter_ms": 60,
             "seed": 20261129}
    faults("openai", **knobs)
    faults("llamaparse", **knobs, webhook_duplicate_rate=0.3, webhook_drop_rate=0.2)
    first, second = clusters(), clusters()
    with api_client(providers.url, other_member) as client:
        upload_all(client, files)

    # kill one cluster while it holds jobs, start another
    deadline = time.monotonic() + 60
    victims: list[str] = []
    while time.monotonic() < deadline and not victims:
        pids = {str(pid) for pid in first.pids()}
        victims = [job_id for job_id, owner in Job.objects.filter(document__owner=other_member)
                   .exclude(lease_owner="").values_list("id", "lease_owner") if owner.split(":")[1] in pids]
        time.sleep(0.05)
    assert victims, "the first cluster never took a job"
    first.kill()
    killed_at = time.time()

    third = clusters()  # a replacement for the killed cluster

    # faults stop after a while; then everything must end well
    faults_stopped_at = [0.0]

    def stop_faults_later():
        time.sleep(20)
        try:
            faults("openai")
            faults("llamaparse")
            faults_stopped_at[0] = time.time()
        finally:
            connection.close()
    stopper = threading.Thread(target=stop_faults_later)
    stopper.start()
    wait_until_terminal(other_member, time.monotonic() + 240)
    stopper.join()

    last_done = (Job.objects.filter(document__owner=other_member).latest("finished_at").finished_at.timestamp()
                 - faults_stopped_at[0])
    result = assert_nothing_lost_or_twice(other_member, expected, bad_names)
    counts = tally.snapshot(since)
    calls, injected = tally.provider_calls(counts), tally.faults_injected(counts)
    webhook_faults = sum(counts.get("llamaparse", {}).get(k, 0) for k in ("webhook_dropped", "webhook_duplicated"))
    jobs = Job.objects.filter(document__owner=other_member)
    retries = Event.objects.filter(job__in=jobs, type="retry_scheduled").count()
    recovered = Event.objects.filter(job__in=jobs, type="stage_started", payload__recovered_lease=True)
    resumed = [e.created_at.timestamp() - killed_at for e in recovered.filter(job_id__in=victims)]
    print(f"\nchaos: documents={len(files)} faults injected={injected} (+{webhook_faults} webhook faults) "
          f"kills=1 retries={retries} recovered={recovered.count()} "
          f"lost={result['lost']} duplicated={result['duplicated']} provider calls={calls} "
          f"(fault-free {baseline_calls}) killed jobs resumed after max {max(resumed, default=0):.1f}s; "
          f"fault-free run {baseline_seconds:.0f}s, chaos run {time.monotonic() - started:.0f}s "
          f"(last document done {last_done:.0f}s after the faults stopped)")
    assert len(resumed) >= 1, "the killed cluster's jobs were never taken over"
    assert calls <= 1.5 * baseline_calls + injected, "retry storm"
    assert second.process.poll() is None and third.process.poll() is None
