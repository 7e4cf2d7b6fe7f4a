"""python manage.py bench_search [--chunks 1000 5000 20000] [--runs 200] [--hnsw]

Creates a benchmark member with N passages, times searches per mode through the service and the
API, prints p50/p95, and deletes the benchmark data afterwards. --hnsw also times the vector
ranking exact and through an HNSW index (built for the run, then dropped).
"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError
from django.test.utils import override_settings
from rich.console import Console
from rich.table import Table

from ingestion.providers.embeddings import active_space
from ingestion.search import MODES, query_vector
from ingestion.search_bench import (bench_member_create, bench_member_delete, hnsw_index_create, hnsw_index_drop,
                                    time_api, time_service, time_vector_sql)
from ingestion.search_eval import labelled_set_load, providers_reachable

DEFAULT_QUERIES = Path(__file__).resolve().parents[3] / "samples" / "eval" / "queries.json"


class Command(BaseCommand):
    help = "Measure search latency (p50/p95) for one member with many passages."

    def add_arguments(self, parser):
        parser.add_argument("--chunks", nargs="+", type=int, default=[1000, 5000, 20000])
        parser.add_argument("--runs", type=int, default=200, help="timed searches per mode and path")
        parser.add_argument("--mode", nargs="+", choices=MODES, default=list(MODES))
        parser.add_argument("--no-api", action="store_true", help="time the service only")
        parser.add_argument("--hnsw", action="store_true", help="also compare exact and HNSW vector ranking")
        parser.add_argument("--queries", default=str(DEFAULT_QUERIES), help="labelled file whose questions are used")
        parser.add_argument("--json", dest="json_path", help="also write the timings to this JSON file")

    def handle(self, *args, **options):
        console = Console(file=self.stdout._out, highlight=False, width=140)
        queries = [q.query for q in labelled_set_load(Path(options["queries"])).queries]
        table = Table(title=f"Search latency, one member, k=5, {options['runs']} searches per cell (ms)")
        for column in ("chunks", "path", "mode", "p50", "p95", "note"):
            table.add_column(column, justify="left" if column in ("path", "mode", "note") else "right")
        timings = []

        def add(timing, note=""):
            table.add_row(str(timing.chunks), timing.path, timing.mode, f"{timing.p50_ms:.1f}", f"{timing.p95_ms:.1f}",
                          note)
            timings.append({**timing.__dict__, "note": note})

        with providers_reachable(), override_settings(DEBUG=False):
            space = active_space()
            vectors = [query_vector(query, space) for query in queries]
            try:
                for count in options["chunks"]:
                    owner = bench_member_create(chunks=count, space=space)
                    for mode in options["mode"]:
                        add(time_service(owner=owner, queries=queries, mode=mode, runs=options["runs"], chunks=count))
                        if not options["no_api"]:
                            add(time_api(owner=owner, queries=queries, mode=mode, runs=options["runs"], chunks=count))
                    if options["hnsw"]:
                        exact, _ = time_vector_sql(owner=owner, vectors=vectors, dimensions=space.dimensions,
                                                   runs=options["runs"], ann=False, chunks=count)
                        add(exact, "ORDER BY distance over the member's rows")
                        try:
                            seconds = hnsw_index_create(space.dimensions)
                        except OperationalError as exc:
                            raise CommandError("BENCH_HNSW_UNSUPPORTED: building the HNSW index crashed the database "
                                               "server (its pgvector build uses CPU instructions this machine lacks). "
                                               "Run --hnsw against a PostgreSQL whose pgvector runs here.") from exc
                        try:
                            ann, recall = time_vector_sql(owner=owner, vectors=vectors, dimensions=space.dimensions,
                                                          runs=options["runs"], ann=True, chunks=count)
                        finally:
                            hnsw_index_drop(space.dimensions)
                        add(ann, f"index built in {seconds:.1f}s ({count / seconds:.0f} rows/s), recall@5 {recall:.2f}")
                    bench_member_delete()
            finally:
                bench_member_delete()
        console.print(table)
        console.print(f"Vectors: {space.model}, {space.dimensions} dimensions (halfvec).")
        if options["json_path"]:
            Path(options["json_path"]).write_text(json.dumps(timings, indent=1))
