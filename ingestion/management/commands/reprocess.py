"""python manage.py reprocess (--document ID... | --status STATUS | --failed) [--from-stage STAGE] [--dry-run]

Starts a new job per selected document (older jobs and their events are kept). From ``chunk`` or
``embed`` the stored parse (and chunks) are reused, so nothing upstream is paid for twice.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.table import Table

from ingestion import services
from ingestion.errors import PermanentError
from ingestion.models import Document
from ingestion.statuses import FAILED, Status


class Command(BaseCommand):
    help = "Start a new processing job for documents, from the parse, chunk or embed stage."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--document", nargs="+", metavar="ID", help="document ids")
        which.add_argument("--status", choices=[s.value for s in Status], help="every document in this status")
        which.add_argument("--failed", action="store_true", help="every document in a failed_* status")
        parser.add_argument("--from-stage", choices=["parse", "chunk", "embed"], default="parse",
                            help="first stage to run again; earlier stages' results are reused (default: parse)")
        parser.add_argument("--dry-run", action="store_true", help="list what would be reprocessed and stop")

    def handle(self, *args, document=None, status=None, failed=False, from_stage="parse", dry_run=False, **options):
        documents = Document.objects.select_related("owner", "current_job").order_by("created_at")
        if document:
            try:
                documents = documents.filter(pk__in=document)
                found = {str(pk) for pk in documents.values_list("pk", flat=True)}
            except ValidationError as exc:
                raise CommandError(f"Not a document id: {exc.messages[0]} Document ids look like "
                                   "3f1c...-...; copy them from the admin or the API.") from exc
            missing = [pk for pk in document if pk not in found]
            if missing:
                raise CommandError(f"No document with id {', '.join(missing)}. Nothing was reprocessed.")
        elif failed:
            documents = documents.filter(status__in=FAILED)
        else:
            documents = documents.filter(status=status)

        console = Console(file=self.stdout, width=140)
        table = Table("document", "owner", "file", "status", "new job" if not dry_run else "would start at")
        started = refused = 0
        for doc in documents:
            if dry_run:
                table.add_row(str(doc.pk), doc.owner.username, doc.filename, doc.status, from_stage)
                continue
            try:
                job = services.job_start(document=doc, from_stage=from_stage)
            except PermanentError as exc:
                refused += 1
                table.add_row(str(doc.pk), doc.owner.username, doc.filename, doc.status, f"refused: {exc.code}")
                self.stderr.write(f"{doc.pk}: {exc.message}")
                continue
            started += 1
            table.add_row(str(doc.pk), doc.owner.username, doc.filename, doc.status, str(job.pk))
        console.print(table)
        if dry_run:
            console.print(f"dry run: {documents.count()} document(s) would be reprocessed from {from_stage}.")
            return
        console.print(f"{started} job(s) started from {from_stage}, {refused} refused.")
        if refused and not started:
            raise CommandError("No document could be reprocessed; see the reasons above.")
        if refused:
            raise CommandError(f"{refused} document(s) could not be reprocessed (see the reasons above); the "
                               f"{started} others were started.")
