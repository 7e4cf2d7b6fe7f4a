"""The throughput benchmark behind ``manage.py bench``: the real pipeline, measured end to end.

It starts its own web server (API + fakes, provider latency as a parameter) and N qcluster
processes on the configured database, uploads its own corpus through the API as a dedicated
member, and reads every figure back from the database (stage times, events) and from the
processes (RSS). Nothing here is estimated: a figure that was not measured is not printed.
"""
from __future__ import annotations

import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import psutil
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone
from rest_framework.authtoken.models import Token

from fakes import embeddings as fake_embeddings
from fakes import tally
from ingestion import services
from ingestion.models import Document, Event
from ingestion.statuses import STAGE_ORDER, TERMINAL, Status
from samples.generate import build_full_document

ROOT = Path(__file__).resolve().parent.parent
BENCH_USER = "bench"
EOC_PATH = ROOT.parent / "shared" / "corpus" / "scan-classic-hmo-2025-eoc.pdf"


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


def mad_ratio(values: list[float]) -> float | None:
    """Median absolute deviation over the median: how much repeated runs vary."""
    if len(values) < 2:
        return None
    median = statistics.median(values)
    return statistics.median(abs(v - median) for v in values) / median if median else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Corpus:
    name: str
    data: bytes
    pages: int


def build_corpus(sizes: list[int], repeat: int, eoc: Path | None, tag: str) -> list[Corpus]:
    """Generated policies of each size with pages as full as the EOC's (distinct text per copy, so no stored
    vector is reused), and the EOC."""
    items = []
    for size in sizes:
        for copy in range(repeat):
            seed = int(tag) * 1000 + size * 10 + copy
            items.append(Corpus(f"generated-{size}p", build_full_document(size, seed=seed), size))
    if eoc is not None and eoc.exists():
        data = eoc.read_bytes()
        from ingestion.providers.pdf_text import page_count
        items += [Corpus("eoc-232p", data, page_count(data)) for _ in range(repeat)]
    return items


class RssSampler(threading.Thread):
    """Samples the resident memory of each process of a group every 50 ms; keeps the peaks."""

    def __init__(self, roots: dict[str, list[int]]):
        super().__init__(daemon=True)
        self.roots = roots
        self.peak_process: dict[str, int] = {role: 0 for role in roots}
        self.peak_total: dict[str, int] = {role: 0 for role in roots}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            for role, pids in self.roots.items():
                total = 0
                for pid in pids:
                    try:
                        parent = psutil.Process(pid)
                        for proc in [parent, *parent.children(recursive=True)]:
                            rss = proc.memory_info().rss
                            total += rss
                            self.peak_process[role] = max(self.peak_process[role], rss)
                    except psutil.NoSuchProcess:
                        continue
                self.peak_total[role] = max(self.peak_total[role], total)


@dataclass
class Stack:
    """The web server and qclusters the benchmark runs against."""

    clusters: int
    workers: int
    latency_ms: float
    log_dir: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, list[subprocess.Popen]] = field(default_factory=lambda: {"web": [], "worker": []})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict:
        return {**os.environ, "DATABASE_URL": os.environ["DATABASE_URL"], "NAVIGATOR_URL": self.url,
                "LLAMAPARSE_BASE_URL": f"{self.url}/fakes/llamaparse", "OPENAI_BASE_URL": f"{self.url}/fakes/openai/v1",
                "WEBHOOK_BASE_URL": self.url, "FAKE_LATENCY_MS": str(self.latency_ms),
                "QCLUSTER_WORKERS": str(self.workers), "QCLUSTER_NAME": f"bench-{os.getpid()}", "LOG_LEVEL": "WARNING", "QCLUSTER_LOG_LEVEL": "INFO",
                # the benchmark member uploads its whole corpus at once: the per-member limits would queue it
                "API_MAX_ACTIVE_JOBS": "100000", "API_UPLOADS_PER_DAY": "100000"}

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        gunicorn = Path(sys.executable).with_name("gunicorn")
        web = subprocess.Popen([str(gunicorn), "navigator.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
                                "--threads", "8", "--timeout", "120", "--no-control-socket"], cwd=ROOT, env=self.env(),
                               stdout=open(self.log_dir / "web.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
        self.processes["web"].append(web)
        for n in range(self.clusters):
            worker = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=self.env(),
                                      stdout=open(self.log_dir / f"qcluster-{n}.log", "w"), stderr=subprocess.STDOUT,
                                      start_new_session=True)
            self.processes["worker"].append(worker)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/fakes/openai/v1/models", timeout=2,
                          headers={"Authorization": f"Bearer {settings.OPENAI_API_KEY}"})
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the web server did not start; see {self.log_dir / 'web.log'}")
                time.sleep(0.2)
        for worker in self.processes["worker"]:  # a cluster is up once its workers, monitor and pusher run
            while len(psutil.Process(worker.pid).children(recursive=True)) < self.workers + 3:
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a qcluster did not start; see {self.log_dir}")
                time.sleep(0.2)
        time.sleep(1.0)  # let every worker reach its queue loop

    def pids(self) -> dict[str, list[int]]:
        return {role: [p.pid for p in procs] for role, procs in self.processes.items()}

    def stop(self) -> None:
        for procs in self.processes.values():
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
        for procs in self.processes.values():
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def _bench_member(n: int = 0):
    """The benchmark's member (``bench``, or ``bench-<n>`` for another copy of the same file), emptied."""
    user = services.user_get_or_create(username=BENCH_USER if n == 0 else f"{BENCH_USER}-{n}")
    for document in Document.objects.filter(owner=user):
        services.document_delete(document=document)
    token, _ = Token.objects.get_or_create(user=user)
    return user, token.key


def _clean_up() -> None:
    for document in Document.objects.filter(owner__username__startswith=BENCH_USER):
        services.document_delete(document=document)


def _wait_terminal(document_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        close_old_connections()
        pending = Document.objects.filter(pk__in=document_ids).exclude(status__in=TERMINAL).count()
        if pending == 0:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{pending} document(s) still processing after {timeout:.0f} s")
        time.sleep(0.02)


def _upload(client: httpx.Client, item: Corpus) -> tuple[str, float]:
    started = time.time()
    response = client.post("/api/v1/documents/", files={"file": (f"{item.name}.pdf", item.data, "application/pdf")})
    if response.status_code not in (200, 201):
        raise RuntimeError(f"upload of {item.name} failed: HTTP {response.status_code} {response.text[:300]}")
    return response.json()["document"]["id"], started


def _job_figures(document_id: str, uploaded_at: float) -> dict:
    document = Document.objects.select_related("current_job").get(pk=document_id)
    job = document.current_job
    events = list(Event.objects.filter(job=job).order_by("created_at", "id").values("type", "stage", "created_at",
                                                                                        "payload"))
    stages = {name: job.stage_times.get(name, {}).get("seconds") for name in STAGE_ORDER}
    # queue hop: from the event that enqueued a stage (job created / previous stage finished) to its start
    hops, last_enqueue = [], None
    store_seconds = index_seconds = 0.0
    store_by_stage: dict[str, float] = {}
    for event in events:
        if event["type"] in ("job_created", "stage_finished"):
            last_enqueue = event["created_at"]
            store_seconds += float(event["payload"].get("store_seconds") or 0)
            if event["payload"].get("store_seconds") is not None:  # passages (chunk) and vectors (embed) apart
                store_by_stage[event["stage"]] = (store_by_stage.get(event["stage"], 0.0)
                                                  + float(event["payload"]["store_seconds"]))
            index_seconds += float(event["payload"].get("index_seconds") or 0)
        elif event["type"] == "stage_started" and last_enqueue is not None:
            hops.append((event["created_at"] - last_enqueue).total_seconds())
            last_enqueue = None
    finished = job.finished_at.timestamp() if job.finished_at else time.time()
    return {"document_id": document_id, "status": document.status, "pages": document.page_count,
            "chunks": job.chunk_count or 0, "e2e_seconds": finished - uploaded_at, "stage_seconds": stages,
            "queue_hops": hops, "store_seconds": store_seconds, "store_seconds_by_stage": store_by_stage, "index_seconds": index_seconds,
            "provider_calls": job.provider_calls,
            "error": job.last_error_code}


_PROBE_TEXTS = [f"Section {n}. The calendar-year deductible is $3,500 per person; prior authorization is required "
                f"for advanced imaging, and appeals are decided within {n % 30 + 1} days." * 4 for n in range(400)]


def cpu_probe() -> float:
    """Seconds for a fixed piece of pure-Python work (the fake embedder's feature hashing of fixed texts,
    ~0.2 s here), timed in this process right after a document completes: how fast the machine itself
    was at that moment. Repeated runs of the same document cannot vary less than this does."""
    started = time.perf_counter()
    for _ in range(4):
        for text in _PROBE_TEXTS:
            fake_embeddings.embed(text, 256)
    return time.perf_counter() - started


def copy_ceiling(limit: int = 5000, repeats: int = 5, document_id: str | None = None) -> dict:
    """The ceiling: the run's own rows (id, text, vector) copied by raw binary COPY into a bare table
    (no index, no constraint, no tsvector) of the same database, WAL-logged like the pipeline's.

    Without ``document_id``: all the run's rows (up to ``limit``) in one COPY, at the end of the run.
    With it: that document's rows alone, right after the pipeline stored them, so the ceiling is
    measured on the same rows, in the same batch and at the same moment as the storage it is set
    against (on a shared machine the speed of a COPY moves by up to 2x within minutes). One COPY
    takes milliseconds, so it is repeated and the median reported."""
    connection.ensure_connection()
    if document_id is None:
        where, args = "c.owner_id IN (SELECT id FROM auth_user WHERE username LIKE %s)", [BENCH_USER + "%"]
    else:
        where, args = "c.document_id = %s", [str(document_id)]
    select = ("SELECT c.id, c.text, v.embedding FROM ingestion_chunk AS c JOIN ingestion_chunkvector AS v "
              f"ON v.chunk_id = c.id WHERE {where} LIMIT %s")
    raw = connection.connection
    with raw.cursor() as cursor:
        cursor.execute(select, [*args, limit])
        rows = cursor.rowcount
        if rows <= 0:
            return {"rows": 0, "rows_per_second": None}
        data = io.BytesIO()
        cursor.copy_expert(cursor.mogrify(f"COPY ({select}) TO STDOUT WITH (FORMAT binary)", [*args, limit]).decode(),
                           data)
        timings = []
        for _ in range(repeats):
            data.seek(0)
            cursor.execute("DROP TABLE IF EXISTS bench_copy_ceiling")
            cursor.execute("CREATE TABLE bench_copy_ceiling (id uuid, text text, embedding halfvec)")
            raw.commit()
            started = time.perf_counter()
            cursor.copy_expert("COPY bench_copy_ceiling FROM STDIN WITH (FORMAT binary)", data)
            raw.commit()
            timings.append(time.perf_counter() - started)
        cursor.execute("DROP TABLE bench_copy_ceiling")
        raw.commit()
    seconds = statistics.median(timings)
    return {"rows": rows, "seconds": seconds, "repeats": repeats, "rows_per_second": rows / seconds,
            "rows_per_second_each": [round(rows / t) for t in timings]}


def run(*, sizes: list[int], repeat: int, eoc: Path | None, clusters: int, workers: int, latency_ms: float,
        log_dir: Path, timeout: float, progress=None) -> dict:
    """Run the benchmark; returns every figure (the command prints and saves them)."""
    _clean_up()
    user, token = _bench_member()
    stack = Stack(clusters=clusters, workers=workers, latency_ms=latency_ms, log_dir=log_dir)
    run_started = datetime.now().astimezone()
    try:
        stack.start()
    except BaseException:
        stack.stop()  # a stack that failed to start leaves no server or cluster behind
        raise
    sampler = RssSampler(stack.pids())
    sampler.start()
    since = timezone.now()
    results: dict = {"started_at": run_started.isoformat(), "clusters": clusters, "workers_per_cluster": workers,
                     "provider_latency_ms": latency_ms, "cpu_count": os.cpu_count(), "host": socket.gethostname()}
    try:
        client = httpx.Client(base_url=stack.url, headers={"Authorization": f"Token {token}"}, timeout=120)
        # 1. latency: one document at a time
        latency_runs = []
        for item in build_corpus(sizes, repeat, eoc, tag="1"):
            if progress:
                progress(f"latency: {item.name}")
            document_id, uploaded_at = _upload(client, item)
            _wait_terminal([document_id], timeout)
            figures = _job_figures(document_id, uploaded_at)
            figures["cpu_probe_seconds"] = cpu_probe()
            if figures["status"] == Status.COMPLETE:  # the raw COPY of this document's rows, right now
                ceiling = copy_ceiling(document_id=document_id, repeats=3)
                figures["ceiling_rows"], figures["ceiling_seconds"] = ceiling["rows"], ceiling.get("seconds")
            latency_runs.append({"name": item.name, **figures})
            services.document_delete(document=Document.objects.get(pk=document_id))
        # 2. throughput: the whole corpus at once
        corpus = build_corpus(sizes, repeat, eoc, tag="2")
        if progress:
            progress(f"throughput: {len(corpus)} documents at once")
        started = time.time()
        # Copies of the same file go to different members: one member's copies would be one document.
        copies: dict[str, int] = {}
        uploads = []
        for item in corpus:
            copy = copies[item.name] = copies.get(item.name, -1) + 1
            if copy and item.name.startswith("eoc"):
                with httpx.Client(base_url=stack.url, timeout=120,
                                  headers={"Authorization": f"Token {_bench_member(copy)[1]}"}) as other:
                    uploads.append(_upload(other, item))
            else:
                uploads.append(_upload(client, item))
        _wait_terminal([doc_id for doc_id, _ in uploads], timeout)
        elapsed = time.time() - started
        throughput_runs = [{"name": item.name, **_job_figures(doc_id, at)} for item, (doc_id, at) in zip(corpus, uploads)]
        results["copy_ceiling"] = copy_ceiling()
    finally:
        sampler.stopped.set()
        stack.stop()
    results["provider_calls"] = tally.snapshot(since)
    results["peak_rss_mb"] = {role: round(v / 2**20, 1) for role, v in sampler.peak_process.items()}
    results["peak_rss_total_mb"] = {role: round(v / 2**20, 1) for role, v in sampler.peak_total.items()}
    results["latency_runs"] = latency_runs
    results["throughput_runs"] = throughput_runs
    results["summary"] = summarise(latency_runs, throughput_runs, elapsed, results["copy_ceiling"])
    _clean_up()
    return results


def summarise(latency_runs: list[dict], throughput_runs: list[dict], elapsed: float, ceiling: dict) -> dict:
    ok = [r for r in throughput_runs if r["status"] == Status.COMPLETE]
    pages = sum(r["pages"] or 0 for r in ok)
    chunks = sum(r["chunks"] for r in ok)
    store_seconds = sum(r["store_seconds"] for r in ok)
    index_seconds = sum(r.get("index_seconds", 0) for r in ok)
    by_size: dict[str, list[float]] = {}
    for r in latency_runs:
        by_size.setdefault(r["name"], []).append(r["e2e_seconds"])
    stages = {name: [r["stage_seconds"][name] for r in latency_runs if r["stage_seconds"].get(name) is not None]
              for name in STAGE_ORDER}
    hops = [h for r in latency_runs for h in r["queue_hops"]]
    storage_rate = chunks / store_seconds if store_seconds else None
    # the same, one document at a time: the machine otherwise as quiet as when the ceiling is measured
    alone_chunks = sum(r["chunks"] for r in latency_runs if r["status"] == Status.COMPLETE)
    alone_seconds = sum(r["store_seconds"] for r in latency_runs if r["status"] == Status.COMPLETE)
    alone_rate = alone_chunks / alone_seconds if alone_seconds else None
    # each document's storage against a raw COPY of its own rows taken right after it (same rows, same
    # batch, same moment): the like-for-like ceiling
    paired = [r for r in latency_runs if r["status"] == Status.COMPLETE and r.get("ceiling_seconds")
              and r["ceiling_rows"] == r["chunks"] and r["store_seconds"] > 0]
    paired_store = sum(r["store_seconds"] for r in paired)
    paired_ceiling = sum(r["ceiling_seconds"] for r in paired)
    paired_rate = sum(r["chunks"] for r in paired) / paired_ceiling if paired_ceiling else None
    index_rate = chunks / index_seconds if index_seconds else None
    both_rate = chunks / (store_seconds + index_seconds) if store_seconds + index_seconds else None
    ceiling_rate = ceiling.get("rows_per_second")
    return {
        "documents": len(throughput_runs), "complete": len(ok), "failed": len(throughput_runs) - len(ok),
        "throughput_seconds": elapsed, "documents_per_minute": len(ok) / elapsed * 60,
        "pages_per_second": pages / elapsed, "chunks_per_second": chunks / elapsed,
        "e2e_by_size": {name: {"runs": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95),
                               "mad_over_median": mad_ratio(v),
                               # the same fixed CPU work timed right after each of these runs: the machine's own spread
                               "cpu_probe_mad_over_median": mad_ratio([r["cpu_probe_seconds"] for r in latency_runs
                                                                       if r["name"] == name])}
                         for name, v in by_size.items()},
        "stage_seconds": {name: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for name, v in stages.items()},
        "queue_hop_seconds": {"n": len(hops), "p50": percentile(hops, 50), "p95": percentile(hops, 95)},
        # storing passages and their vectors (COPY, set-based inserts, btree indexes), all documents at once
        "chunk_storage_rows_per_second": storage_rate,
        "chunk_storage_one_at_a_time_rows_per_second": alone_rate,
        "storage_one_at_a_time_vs_copy": alone_rate / ceiling_rate if alone_rate and ceiling_rate else None,
        "copy_ceiling_by_document_rows_per_second": paired_rate,
        "storage_one_at_a_time_vs_copy_by_document": paired_ceiling / paired_store if paired_store else None,
        "storage_vs_copy_by_document_by_size": {
            name: sum(r["ceiling_seconds"] for r in paired if r["name"] == name)
            / max(sum(r["store_seconds"] for r in paired if r["name"] == name), 1e-9)
            for name in sorted({r["name"] for r in paired})},
        # building their full-text entries (PostgreSQL parsing each text into an english tsvector, GIN)
        "full_text_index_rows_per_second": index_rate,
        "storage_and_index_rows_per_second": both_rate,
        "copy_ceiling_rows_per_second": ceiling_rate,
        "storage_vs_copy": storage_rate / ceiling_rate if storage_rate and ceiling_rate else None,
        "storage_and_index_vs_copy": both_rate / ceiling_rate if both_rate and ceiling_rate else None,
        # per document size: small documents pay a few statements and a commit for a handful of rows
        "chunk_storage_rows_per_second_by_size": {
            name: sum(r["chunks"] for r in ok if r["name"] == name)
            / max(sum(r["store_seconds"] for r in ok if r["name"] == name), 1e-9)
            for name in sorted({r["name"] for r in ok})},
    }
