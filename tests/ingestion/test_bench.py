"""The benchmark runs the real pipeline and reports what it measured (no figure is asserted, only its presence)."""
import json
from io import StringIO

import pytest
from django.core.management import call_command

from ingestion.benchmark import mad_ratio, percentile
from ingestion.providers.pdf_text import page_count, pdf_to_markdown_pages
from samples.generate import build_full_document
from ingestion.models import Document
from tests.clusters import database_url


def test_percentile_and_spread():
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert mad_ratio([1.0]) is None
    assert mad_ratio([10.0, 10.0, 11.0]) == 0.0
    assert mad_ratio([9.0, 10.0, 12.0]) == pytest.approx(0.1)


def test_benchmark_documents_have_full_pages_of_their_own_text():
    data = build_full_document(12, seed=3)
    pages = pdf_to_markdown_pages(data)
    assert page_count(data) == 12
    assert all(len(page.split()) > 300 for page in pages)  # a page of an EOC, not a line or two
    assert all(page.startswith("## SECTION") for page in pages)  # titles survive running-header removal
    other = pdf_to_markdown_pages(build_full_document(12, seed=4))
    assert not set(pages) & set(other)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_bench_runs_documents_through_a_real_stack_and_saves_its_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url())  # the stack it starts uses the test database
    out = StringIO()
    call_command("bench", "--sizes", "1", "3", "--repeat", "1", "--eoc", "", "--timeout", "120", "--json", str(tmp_path / "b.json"),
                 stdout=out)
    figures = json.loads((tmp_path / "b.json").read_text())
    summary = figures["summary"]
    assert summary["complete"] == summary["documents"] == 2 and summary["failed"] == 0
    assert set(summary["e2e_by_size"]) == {"generated-1p", "generated-3p"}
    assert all(run["cpu_probe_seconds"] > 0 for run in figures["latency_runs"])
    assert "machine MAD/median" in out.getvalue()
    assert summary["queue_hop_seconds"]["n"] >= 10 and summary["copy_ceiling_rows_per_second"] > 0
    assert summary["chunk_storage_rows_per_second"] > summary["storage_and_index_rows_per_second"] > 0
    assert summary["chunk_storage_one_at_a_time_rows_per_second"] > 0 and summary["storage_one_at_a_time_vs_copy"] > 0
    # every document of the latency phase was set against a raw COPY of its own rows
    assert all(run["ceiling_rows"] == run["chunks"] > 0 and run["ceiling_seconds"] > 0 for run in figures["latency_runs"])
    assert summary["copy_ceiling_by_document_rows_per_second"] > 0
    assert set(summary["storage_vs_copy_by_document_by_size"]) == {"generated-1p", "generated-3p"}
    assert summary["full_text_index_rows_per_second"] > 0
    assert figures["peak_rss_mb"]["worker"] > 0 and figures["provider_calls"]["openai"]["ok"] >= 2
    assert "documents/min" in out.getvalue() and "figures saved to" in out.getvalue()
    assert not Document.objects.filter(owner__username="bench").exists()  # it cleans up after itself
