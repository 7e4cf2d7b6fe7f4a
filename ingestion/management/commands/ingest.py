"""python manage.py ingest PATH... [--user NAME] [--wait | --sync]: upload PDFs as a member."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
from django.conf import settings

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ingestion import services
from ingestion.errors import PermanentError
from ingestion.models import Document, Job
from ingestion.pipeline.runner import run_job_sync
from ingestion.statuses import FAILED, TERMINAL, Status


def qcluster_running(wait_seconds: float = 15.0) -> bool:
    """True once a qcluster reports to the shared cache; waits briefly for one that is starting."""
    from django_q.status import Stat

    deadline = time.monotonic() + wait_seconds
    while True:
        if any(stat.status in ("Idle", "Working", "Starting") for stat in Stat.get_all()):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


def wait_for_providers(wait_seconds: float = 30.0) -> None:
    """Wait until the parser's URL answers (the local fakes start with the web server)."""
    deadline = time.monotonic() + wait_seconds
    url = settings.LLAMAPARSE_BASE_URL if settings.PARSER_BACKEND != "local" else settings.OPENAI_BASE_URL
    while True:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                raise CommandError(f"The providers at {url} do not answer. Start the web server (it serves the "
                                   "local fakes) or set LLAMAPARSE_BASE_URL / OPENAI_BASE_URL.")
            time.sleep(0.5)


class Command(BaseCommand):
    help = "Upload PDF files (or folders of them) as a member and optionally wait for them to be processed."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="PDF files or folders containing PDFs")
        parser.add_argument("--user", default="demo", help="member to upload as (created if missing)")
        parser.add_argument("--wait", action="store_true", help="show progress until every document has ended")
        parser.add_argument("--sync", action="store_true", help="run the stages here, without a qcluster")
        parser.add_argument("--timeout", type=float, default=600, help="seconds --wait waits at most")
        parser.add_argument("--cluster-wait", type=float, default=15, help="seconds to wait for a qcluster to report")

    def handle(self, *args, **options):
        console = Console(file=self.stdout._out, highlight=False, width=140)
        files: list[Path] = []
        for raw in options["paths"]:
            path = Path(raw)
            if path.is_dir():
                files += sorted(p for p in path.iterdir() if p.suffix.lower() == ".pdf")
            elif path.exists():
                files.append(path)
            else:
                raise CommandError(f"{path} does not exist.")
        if not files:
            raise CommandError("No PDF files found in the given paths.")
        owner = services.user_get_or_create(username=options["user"])
        rows: list[dict] = []
        for path in files:
            row = {"file": path.name, "document": None, "job": None, "started": time.monotonic(),
                   "status": "", "error": ""}
            try:
                result = services.document_upload(owner=owner, data=path.read_bytes(), filename=path.name)
            except PermanentError as exc:
                row.update(status="failed_parse", error=f"{exc.code}: {exc.message}")
            else:
                job = result.job
                if result.duplicate and result.document.status in FAILED | {Status.CANCELLED} and job:
                    # Ingesting a file that failed before means "try again": start a new job.
                    job = services.job_retry(job=job)
                    row["error"] = "already uploaded; processing again"
                elif result.duplicate:
                    row["error"] = "already uploaded"
                row.update(document=result.document.id, job=job.id if job else None,
                           status=job.status if job else result.document.status)
            rows.append(row)
        pending = [r for r in rows if r["job"] and r["status"] not in TERMINAL]
        if pending and (options["sync"] or options["wait"]):
            wait_for_providers()
        if options["sync"]:
            for row in pending:
                run_job_sync(row["job"])
                row["seconds"] = time.monotonic() - row["started"]
        elif options["wait"] and pending:
            if not qcluster_running(options["cluster_wait"]):
                raise CommandError("No qcluster is running, so the documents would wait for ever. Start one with "
                                   "'python manage.py qcluster' (or 'make run'), or use --sync to process here.")
            self._wait(console, pending, options["timeout"])
        self._report(console, rows, waited=options["wait"] or options["sync"])
        if (options["wait"] or options["sync"]) and any(
                r["status"] in FAILED or r["status"] not in TERMINAL for r in rows):
            raise CommandError("Some documents did not complete (see the table above).")
        if any(r["job"] is None and r["status"] in FAILED for r in rows):
            raise CommandError("Some files were refused (see the table above); the others were queued.")

    def _wait(self, console, pending, timeout):
        deadline = time.monotonic() + timeout
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console) as progress:
            tasks = {r["job"]: progress.add_task(r["file"][:40], total=100, status="uploaded") for r in pending}
            open_rows = list(pending)
            while open_rows and time.monotonic() < deadline:
                jobs = {j.id: j for j in Job.objects.filter(id__in=[r["job"] for r in open_rows])}
                for row in list(open_rows):
                    job = jobs[row["job"]]
                    progress.update(tasks[row["job"]], completed=job.progress.get("total_pct", 0), status=job.status)
                    if job.status in TERMINAL:
                        row["seconds"] = time.monotonic() - row["started"]
                        open_rows.remove(row)
                close_old_connections()
                time.sleep(0.2)

    def _report(self, console, rows, waited):
        table = Table(title="Ingested documents")
        for column in ("file", "status", "pages", "chunks", "seconds", "note"):
            table.add_column(column)
        for row in rows:
            document = Document.objects.filter(pk=row["document"]).select_related("current_job").first()
            job = document.current_job if document else None
            if document:
                row["status"] = document.status
                if job and job.last_error_code and row["status"] != Status.COMPLETE:
                    row["error"] = f"{job.last_error_code}: {job.last_error_message}"
            table.add_row(row["file"], row["status"], str(document.page_count if document else "-"),
                          str(job.chunk_count if job and job.chunk_count is not None else "-"),
                          f"{row['seconds']:.1f}" if waited and "seconds" in row else "-", row["error"])
        console.print(table)
