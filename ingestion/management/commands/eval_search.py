"""python manage.py eval_search --queries FILE.json [--mode ...] [--backend ...] [--chunk-tokens ...]

Ingests the labelled file's documents for an evaluation member (in this process, local PDF parser),
then prints hit@1, hit@5 and MRR@10 per search mode, per embedding backend and chunk setting.
"""
from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings
from rich.console import Console
from rich.table import Table

from ingestion.errors import PermanentError
from ingestion.models import Chunk
from ingestion.providers import local_embeddings
from ingestion.providers.embeddings import BACKENDS, active_space
from ingestion.search import MODES
from ingestion.search_eval import (MRR_DEPTH, eval_documents_ingest, evaluate_mode, labelled_set_load,
                                   providers_reachable)


class Command(BaseCommand):
    help = "Measure search quality (hit@1, hit@5, MRR) on a labelled set of questions."

    def add_arguments(self, parser):
        parser.add_argument("--queries", required=True, help="labelled query file (see samples/eval/queries.json)")
        parser.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES))
        parser.add_argument("--backend", nargs="+", choices=BACKENDS, default=None,
                            help="embedding backends (default: EMBEDDING_BACKEND; 'local' needs requirements-local.txt)")
        parser.add_argument("--chunk-tokens", nargs="+", type=int, default=None,
                            help="chunk sizes to compare (default: CHUNK_MAX_TOKENS)")
        parser.add_argument("--overlap-tokens", nargs="+", type=int, default=None,
                            help="overlaps to compare (default: CHUNK_OVERLAP_TOKENS)")
        parser.add_argument("--user", default="eval-search", help="member the documents are ingested for")
        parser.add_argument("--json", dest="json_path", help="also write the results to this JSON file")
        parser.add_argument("--show-misses", action="store_true", help="list the queries a mode missed in its top 5")

    def handle(self, *args, **options):
        console = Console(file=self.stdout._out, highlight=False, width=140)
        try:
            labelled = labelled_set_load(Path(options["queries"]))
        except PermanentError as error:
            raise CommandError(f"{error.code}: {error.message}")
        backends = options["backend"] or [settings.EMBEDDING_BACKEND]
        if "local" in backends and not local_embeddings.is_installed():
            raise CommandError("EMBED_LOCAL_BACKEND_MISSING: the local backend needs `pip install -r "
                               "requirements-local.txt` (see README, Search).")
        sizes = options["chunk_tokens"] or [settings.CHUNK_MAX_TOKENS]
        overlaps = options["overlap_tokens"] or [settings.CHUNK_OVERLAP_TOKENS]
        table = Table(title=f"Search quality on {len(labelled.queries)} labelled queries "
                            f"({len(labelled.documents)} documents), MRR@{MRR_DEPTH}")
        for column in ("backend", "model", "chunk tokens", "overlap", "chunks", "mode", "hit@1", "hit@5", "MRR"):
            table.add_column(column, justify="left" if column in ("backend", "model", "mode") else "right")
        results = []
        for backend in backends:
            for size in sizes:
                for overlap in overlaps:
                    with override_settings(EMBEDDING_BACKEND=backend, CHUNK_MAX_TOKENS=size,
                                           CHUNK_OVERLAP_TOKENS=overlap), providers_reachable():
                        username = f"{options['user']}-{backend}"
                        try:
                            documents = eval_documents_ingest(username=username, documents=labelled.documents)
                        except PermanentError as error:
                            raise CommandError(f"{error.code}: {error.message}")
                        owner = documents[0].owner
                        chunk_count = Chunk.objects.filter(owner=owner).count()
                        space = active_space()
                        for mode in options["mode"]:
                            result = evaluate_mode(owner=owner, labelled=labelled, mode=mode)
                            table.add_row(backend, space.model, str(size), str(overlap), str(chunk_count), mode,
                                          f"{result.hit_at_1:.3f}", f"{result.hit_at_5:.3f}", f"{result.mrr:.3f}")
                            results.append({"backend": backend, "model": space.model, "dimensions": space.dimensions,
                                            "chunk_tokens": size, "overlap_tokens": overlap, "chunks": chunk_count,
                                            "mode": mode, "hit_at_1": result.hit_at_1, "hit_at_5": result.hit_at_5,
                                            "mrr": result.mrr, "first_hit_ranks": result.first_hit_ranks})
                            if options["show_misses"]:
                                for query in labelled.queries:
                                    rank = result.first_hit_ranks[query.id]
                                    if rank is None or rank > 5:
                                        console.print(f"  miss ({backend} {size}/{overlap} {mode}) {query.id} "
                                                      f"(first hit: {rank}): {query.query}")
        console.print(table)
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps({"queries": len(labelled.queries), "results": results},
                                                              indent=1))
