"""python manage.py bench: documents through the real pipeline, with every figure measured and saved."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from rich.console import Console
from rich.table import Table

from ingestion import benchmark


def _ms(value) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def _s(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


class Command(BaseCommand):
    help = ("Benchmark the pipeline: its own web server (API + fakes) and qcluster processes, generated documents "
            "of 1, 10 and 100 pages plus the 232-page Evidence of Coverage when present. Prints a table, writes JSON.")

    def add_arguments(self, parser):
        parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100], help="generated document sizes (pages)")
        parser.add_argument("--repeat", type=int, default=5, help="documents of each size (and EOC runs); "
                            "the repeat variation (MAD / median) needs more than three")
        parser.add_argument("--eoc", default=str(benchmark.EOC_PATH), help="path of a real PDF to include ('' to skip)")
        parser.add_argument("--clusters", type=int, default=1, help="qcluster processes")
        parser.add_argument("--workers", type=int, default=settings.QCLUSTER_WORKERS, help="workers per qcluster")
        parser.add_argument("--latency-ms", type=float, default=0, help="latency the fake providers add per request")
        parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for a document at most")
        parser.add_argument("--json", default="", help="where to write the figures (default: .data/bench/<time>.json)")

    def handle(self, *args, sizes, repeat, eoc, clusters, workers, latency_ms, timeout, json: str, **options):
        console = Console(file=self.stdout, width=130)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = settings.NAVIGATOR_DATA_DIR / "bench"
        results = benchmark.run(sizes=sizes, repeat=repeat, eoc=Path(eoc) if eoc else None, clusters=clusters,
                                workers=workers, latency_ms=latency_ms, log_dir=out_dir / f"logs-{stamp}", timeout=timeout,
                                progress=lambda message: console.print(f"[dim]{message}[/dim]"))
        path = Path(json) if json else out_dir / f"bench-{stamp}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dumps(results))
        self._print(console, results, path)

    def _print(self, console: Console, results: dict, path: Path) -> None:
        s = results["summary"]
        console.print(f"[bold]bench[/bold]: {results['clusters']} qcluster(s) x {results['workers_per_cluster']} workers, "
                      f"provider latency {results['provider_latency_ms']:.0f} ms, {results['cpu_count']} CPUs")
        table = Table(title="End to end, one document at a time (upload through the API to complete)")
        for column in ("document", "runs", "p50 s", "p95 s", "MAD/median", "machine MAD/median"):
            table.add_column(column)
        for name, row in s["e2e_by_size"].items():
            table.add_row(name, str(row["runs"]), _s(row["p50"]), _s(row["p95"]), _pct(row["mad_over_median"]),
                          _pct(row["cpu_probe_mad_over_median"]))
        console.print(table)
        console.print("[dim]machine MAD/median: the same fixed CPU work, timed right after each of those runs (the "
                      "machine's own spread at those moments)[/dim]")
        stages = Table(title="Stages (one document at a time)")
        for column in ("stage", "p50 ms", "p95 ms"):
            stages.add_column(column)
        for name, row in s["stage_seconds"].items():
            stages.add_row(name, _ms(row["p50"]), _ms(row["p95"]))
        hop = s["queue_hop_seconds"]
        stages.add_row("queue hop", _ms(hop["p50"]), _ms(hop["p95"]))
        console.print(stages)
        totals = Table(title=f"Throughput: {s['documents']} documents uploaded at once")
        for column in ("documents/min", "pages/s", "chunks/s", "complete", "failed", "seconds"):
            totals.add_column(column)
        totals.add_row(f"{s['documents_per_minute']:.1f}", f"{s['pages_per_second']:.1f}", f"{s['chunks_per_second']:.1f}",
                       str(s["complete"]), str(s["failed"]), f"{s['throughput_seconds']:.1f}")
        console.print(totals)
        def share(ratio):
            return "" if ratio is None else f" ({ratio:.0%} of raw COPY)"

        console.print(f"raw COPY of the same rows into a bare table: {s['copy_ceiling_rows_per_second'] or 0:.0f} rows/s; "
                      f"chunk storage (passages and vectors) one document at a time "
                      f"{s['chunk_storage_one_at_a_time_rows_per_second'] or 0:.0f} rows/s"
                      f"{share(s['storage_one_at_a_time_vs_copy'])}, all documents at once "
                      f"{s['chunk_storage_rows_per_second'] or 0:.0f} rows/s"
                      f"{share(s['storage_vs_copy'])}; full-text index build "
                      f"{s['full_text_index_rows_per_second'] or 0:.0f} rows/s; both "
                      f"{s['storage_and_index_rows_per_second'] or 0:.0f} rows/s{share(s['storage_and_index_vs_copy'])}")
        console.print(f"the same, each document against a raw COPY of its own rows taken right after it: "
                      f"{s['copy_ceiling_by_document_rows_per_second'] or 0:.0f} rows/s raw, storage"
                      f"{share(s['storage_one_at_a_time_vs_copy_by_document'])}; by document: " + ", ".join(
                          f"{name} {ratio:.0%}" for name, ratio in s["storage_vs_copy_by_document_by_size"].items()))
        ceiling = s["copy_ceiling_rows_per_second"]
        console.print("chunk storage by document (all at once): " + ", ".join(
            f"{name} {rate:.0f} rows/s" + (f" ({rate / ceiling:.0%})" if ceiling else "")
            for name, rate in s["chunk_storage_rows_per_second_by_size"].items()))
        calls = results["provider_calls"]
        console.print("provider calls: " + ", ".join(f"{svc} {sum(v.values())} ({', '.join(f'{k} {n}' for k, n in v.items())})"
                                                    for svc, v in calls.items()))
        console.print(f"peak RSS per process: web {results['peak_rss_mb']['web']} MB, worker "
                      f"{results['peak_rss_mb']['worker']} MB (all worker processes together "
                      f"{results['peak_rss_total_mb']['worker']} MB)")
        console.print(f"figures saved to {path}")


def _dumps(results: dict) -> str:
    return json.dumps(results, indent=2, default=str)
