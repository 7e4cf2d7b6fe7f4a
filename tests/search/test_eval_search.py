import json
from pathlib import Path

import pytest
from django.core.management import call_command

from ingestion.errors import PermanentError
from ingestion.providers import local_embeddings
from ingestion.search_eval import labelled_set_load

QUERIES = Path(__file__).resolve().parents[2] / "samples" / "eval" / "queries.json"
HELD_OUT = QUERIES.with_name("heldout.json")


@pytest.mark.parametrize("path, size", [(QUERIES, 25), (HELD_OUT, 20)])
def test_the_committed_labelled_sets_are_large_and_every_label_is_on_its_page(path, size):
    labelled = labelled_set_load(path)  # refuses a label whose phrase is not on its page
    assert len(labelled.queries) >= size
    assert len({q.id for q in labelled.queries}) == len(labelled.queries)


def test_the_held_out_questions_are_not_the_tuning_questions():
    tuning = {q.query.lower() for q in labelled_set_load(QUERIES).queries}
    held_out = labelled_set_load(HELD_OUT)
    assert not tuning & {q.query.lower() for q in held_out.queries}
    assert not {q.id for q in labelled_set_load(QUERIES).queries} & {q.id for q in held_out.queries}


def test_a_label_whose_phrase_is_not_on_its_page_is_refused(tmp_path):
    raw = json.loads(QUERIES.read_text())
    raw["documents_dir"] = str(QUERIES.parent.parent)
    raw["queries"][0]["answers"][0]["pages"] = [2]  # the deductible is on page 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(PermanentError) as error:
        labelled_set_load(bad)
    assert error.value.code == "EVAL_BAD_LABELS" and "q01" in error.value.message


@pytest.mark.django_db(transaction=True)
def test_eval_search_reports_sane_quality_for_every_mode(providers, tmp_path):
    # when the evaluation ingests the sample documents and runs the labelled questions
    out = tmp_path / "results.json"
    call_command("eval_search", "--queries", str(QUERIES), "--json", str(out), stdout=open(tmp_path / "log", "w"))
    results = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    # then every mode finds most answers in its top 5, far above chance (5 of ~20 passages)
    assert set(results) == {"hybrid", "vector", "text"}
    for result in results.values():
        assert 0.5 <= result["hit_at_5"] <= 1 and result["hit_at_1"] <= result["hit_at_5"]
        assert result["hit_at_1"] <= result["mrr"] <= result["hit_at_5"] + 0.5
    # and fusing the two rankings is not worse than the weaker one. Passages with the same text in
    # several documents tie on both scores and are ordered by id, which is new on every ingest, so a
    # run may differ by one question either way.
    hybrid, vector, text = results["hybrid"], results["vector"], results["text"]
    one_question = 1 / len(json.loads(QUERIES.read_text())["queries"])
    assert hybrid["hit_at_5"] >= min(vector["hit_at_5"], text["hit_at_5"]) - one_question
    assert hybrid["mrr"] >= min(vector["mrr"], text["mrr"]) - one_question


@pytest.mark.skipif(not local_embeddings.is_installed(), reason="needs requirements-local.txt (sentence-transformers)")
@pytest.mark.django_db(transaction=True)
def test_the_local_backend_embeds_384_dimensional_vectors_offline(tmp_path):
    out = tmp_path / "results.json"
    call_command("eval_search", "--queries", str(QUERIES), "--backend", "local", "--mode", "vector", "--json", str(out),
                 stdout=open(tmp_path / "log", "w"))
    result = json.loads(out.read_text())["results"][0]
    assert result["dimensions"] == 384 and result["model"] == local_embeddings.MODEL_NAME
    assert result["hit_at_5"] >= 0.5


@pytest.mark.skipif(not local_embeddings.is_installed(), reason="needs requirements-local.txt (sentence-transformers)")
@pytest.mark.django_db(transaction=True)
def test_with_a_semantic_model_hybrid_beats_both_modes_on_the_held_out_questions(tmp_path):
    # given the held-out questions (never used to tune the search) and a real embedding model
    out = tmp_path / "results.json"
    call_command("eval_search", "--queries", str(HELD_OUT), "--backend", "local", "--json", str(out),
                 stdout=open(tmp_path / "log", "w"))
    results = {r["mode"]: r for r in json.loads(out.read_text())["results"]}
    hybrid, best_single = results["hybrid"], max(results["vector"]["hit_at_5"], results["text"]["hit_at_5"])
    # then fusing the rankings finds more answers in the top 5 than either ranking alone, and ranks them higher
    assert hybrid["hit_at_5"] > best_single
    assert hybrid["mrr"] > max(results["vector"]["mrr"], results["text"]["mrr"])
