import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from ingestion.models import Chunk
from ingestion.search_bench import BENCH_USERNAME


@pytest.mark.django_db(transaction=True)
def test_bench_search_times_every_mode_on_both_paths_and_removes_its_data(providers, member, tmp_path):
    out = tmp_path / "timings.json"
    call_command("bench_search", "--chunks", "60", "--runs", "3", "--json", str(out), stdout=io.StringIO())
    timings = json.loads(out.read_text())
    assert {(t["path"], t["mode"]) for t in timings} == {(p, m) for p in ("service", "api")
                                                         for m in ("hybrid", "vector", "text")}
    assert all(0 < t["p50_ms"] <= t["p95_ms"] and t["chunks"] == 60 for t in timings)
    assert not User.objects.filter(username=BENCH_USERNAME).exists() and not Chunk.objects.exists()
