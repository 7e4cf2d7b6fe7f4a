import pytest
from django.core.signals import request_started

from ingestion.errors import PermanentError
from ingestion.models import Chunk, EmbeddingCache
from ingestion.search import search_chunks

from tests.search.conftest import ingest
from samples.generate import build_document


@pytest.fixture
def embedding_requests():
    """Counts requests that reach the fake OpenAI embeddings endpoint over HTTP."""
    seen = []

    def count(sender, environ=None, **kwargs):
        if environ and environ.get("PATH_INFO", "").endswith("/fakes/openai/v1/embeddings"):
            seen.append(environ["PATH_INFO"])

    request_started.connect(count)
    yield seen
    request_started.disconnect(count)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_each_mode_finds_the_page_that_answers(ingested, member, mode):
    # given a member's policy whose page 3 is its out-of-pocket section
    mine, _ = ingested
    # when
    hits = search_chunks(owner=member, query="out-of-pocket maximum per family", k=3, mode=mode)
    # then
    assert hits and hits[0].document_id == str(mine.id)
    assert "Out-of-Pocket Maximum" in " ".join(hits[0].heading_path)
    assert hits[0].page_start <= 3 <= hits[0].page_end


@pytest.mark.django_db(transaction=True)
def test_hits_carry_citations_and_every_modes_score(ingested, member):
    mine, _ = ingested
    hit = search_chunks(owner=member, query="out-of-pocket maximum", k=1, mode="hybrid")[0]
    assert hit.filename == "my-policy.pdf" and hit.document_id == str(mine.id)
    assert hit.text and "<mark>" in hit.snippet
    assert hit.vector_score is not None and hit.text_score is not None and hit.fused_score is not None
    assert set(hit.scores) == {"vector", "text", "fused"} and hit.score == hit.fused_score
    assert hit.vector_rank >= 1 and hit.text_rank >= 1
    assert hit.citation == "my-policy.pdf, pp. 3-4" and (hit.page_start, hit.page_end) == (3, 4)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_search_never_returns_another_members_passages(ingested, member, mode):
    _, theirs = ingested
    hits = search_chunks(owner=member, query="document 5 out-of-pocket maximum grace period", k=50, mode=mode)
    assert hits and all(hit.document_id != str(theirs.id) for hit in hits)


@pytest.mark.django_db(transaction=True)
def test_document_ids_narrow_the_search_to_those_documents(providers, member, settings):
    settings.PARSER_BACKEND = "local"
    first = ingest(member, build_document(2, seed=1), "first.pdf")
    ingest(member, build_document(2, seed=2), "second.pdf")
    hits = search_chunks(owner=member, query="Member Services", k=20, document_ids=[first.id])
    assert hits and {hit.document_id for hit in hits} == {str(first.id)}


@pytest.mark.django_db(transaction=True)
def test_the_same_query_is_embedded_once(ingested, member, embedding_requests):
    # given a query never asked before
    search_chunks(owner=member, query="prior authorization for imaging", k=3, mode="vector")
    assert len(embedding_requests) == 1
    # when the same question is asked again (extra spaces do not make it a new one)
    search_chunks(owner=member, query="  prior authorization   for imaging ", k=3, mode="hybrid")
    # then no provider call was made, and a new question makes one
    assert len(embedding_requests) == 1
    search_chunks(owner=member, query="emergency room", k=3, mode="vector")
    assert len(embedding_requests) == 2


@pytest.mark.django_db(transaction=True)
def test_a_cached_query_vector_of_another_size_is_not_reused(ingested, member, embedding_requests, settings):
    search_chunks(owner=member, query="newborn coverage", k=3, mode="vector")
    settings.EMBEDDING_DIMENSIONS = 384
    search_chunks(owner=member, query="newborn coverage", k=3, mode="vector")
    assert len(embedding_requests) == 2
    assert set(EmbeddingCache.objects.values_list("dimensions", flat=True)) >= {1536, 384}


@pytest.mark.django_db(transaction=True)
def test_384_dimensional_vectors_are_stored_and_searched(providers, member, settings):
    # given the embedding size set to 384 (the local model's size) through the provider's dimensions
    settings.PARSER_BACKEND = "local"
    settings.EMBEDDING_DIMENSIONS = 384
    document = ingest(member, build_document(3, seed=4), "small-vectors.pdf")
    # then every passage records a 384-d vector of the model
    chunks = Chunk.objects.filter(document=document)
    assert document.status == "complete" and chunks.exists()
    assert set(chunks.values_list("vector__model", "vector__dimensions")) == {("text-embedding-3-small", 384)}
    assert all(len(vector) == 384 for vector in chunks.values_list("vector__embedding", flat=True))
    assert document.current_job.embed_dimensions == 384
    # and vector search compares 384-d vectors only
    hits = search_chunks(owner=member, query="prescription drug coverage tiers", k=2, mode="vector")
    assert hits and "Prescription Drug Coverage" in " ".join(hits[0].heading_path)


@pytest.mark.django_db(transaction=True)
def test_vectors_of_a_different_model_are_not_compared_and_are_replaced(ingested, member, settings):
    from ingestion import services
    from ingestion.pipeline.runner import run_job_sync

    mine, _ = ingested
    settings.EMBEDDING_DIMENSIONS = 512
    # then the stored 1536-d vectors are not compared with a 512-d query
    assert search_chunks(owner=member, query="grace period", k=3, mode="vector") == []
    # when the document is embedded again, its vectors are replaced by the active model's
    run_job_sync(services.job_start(document=mine, from_stage="embed").id)
    assert set(Chunk.objects.filter(document=mine).values_list("vector__dimensions", flat=True)) == {512}
    assert search_chunks(owner=member, query="grace period", k=3, mode="vector")


@pytest.mark.django_db
def test_unknown_mode_and_empty_query_are_refused_with_codes(member):
    with pytest.raises(PermanentError) as unknown:
        search_chunks(owner=member, query="deductible", mode="fuzzy")
    with pytest.raises(PermanentError) as empty:
        search_chunks(owner=member, query="   ")
    assert unknown.value.code == "SEARCH_UNKNOWN_MODE" and empty.value.code == "SEARCH_EMPTY_QUERY"


@pytest.mark.django_db
def test_text_search_of_only_stop_words_finds_nothing(member):
    assert search_chunks(owner=member, query="what is the", mode="text") == []


def _ranking(hits):
    return [(hit.chunk_id, hit.vector_rank, hit.text_rank, hit.fused_score) for hit in hits]


@pytest.mark.django_db(transaction=True)
def test_hybrid_ranks_the_same_with_its_text_ranking_on_a_side_connection(ingested, member, settings):
    import threading

    queries = ["out-of-pocket maximum per family", "what happens if I pay my premium late", "MRI prior approval"]
    # given the side connection turned off, the reference rankings
    settings.SEARCH_SIDE_THREADS = 0
    expected = [_ranking(search_chunks(owner=member, query=q, k=5, mode="hybrid")) for q in queries]
    # when the text ranking runs on a side connection
    settings.SEARCH_SIDE_THREADS = 2
    found = [_ranking(search_chunks(owner=member, query=q, k=5, mode="hybrid")) for q in queries]
    # then it did run in a side thread, and the rankings are the same
    assert any(t.name.startswith("search-ranking") for t in threading.enumerate())
    assert found == expected and all(found)


@pytest.mark.django_db
def test_hybrid_inside_a_transaction_sees_its_uncommitted_passages(member):
    # given passages written in this (uncommitted) transaction: a side connection could not see them
    from model_bakery import baker
    from ingestion.search import _beside

    document = baker.make("ingestion.Document", owner=member, status="complete")
    baker.make("ingestion.Chunk", id=Chunk.make_id(document.id, "t", 0), document=document, owner=member,
               ordinal=0, text="Coinsurance for skilled nursing facility stays", chunker_version="t")
    from ingestion.pipeline.bulk import index_chunks
    index_chunks(document.id)
    # when a ranking is started "beside" inside the transaction, then it runs here and sees them
    from ingestion.search import _text_ranked, query_terms
    rows = _beside(_text_ranked, member, query_terms("skilled nursing"), None, 5).result()
    assert [row[0] for row in rows] == [Chunk.make_id(document.id, "t", 0)]


@pytest.mark.django_db(transaction=True)
def test_text_ranking_in_one_pass_ranks_like_counting_each_term_on_its_own(ingested, member):
    from django.db import connection
    from ingestion.search import _any_of, _text_ranked, query_terms

    for query in ["out-of-pocket maximum per family", "premium grace period", "emergency room copay",
                  "plan covers services"]:
        terms = query_terms(query)
        any_term = _any_of(terms)
        # the reference: BM25 (presence-only tf, k1 1.2, b 0.75) with each term counted on its own, in plain SQL
        with connection.cursor() as cursor:
            cursor.execute("""
                WITH n AS (SELECT count(*)::float8 AS n FROM ingestion_chunksearch WHERE owner_id = %(o)s),
                avglen AS (SELECT avg(token_count) AS a FROM ingestion_chunksearch
                            WHERE owner_id = %(o)s AND search_vector @@ %(any)s::tsquery),
                terms AS (SELECT t.q::tsquery AS q, t.w * ln(1 + (n.n - df.n + 0.5) / (df.n + 0.5)) AS idf
                            FROM unnest(%(terms)s::text[], %(weights)s::float8[]) AS t(q, w)
                           CROSS JOIN n CROSS JOIN LATERAL
                                 (SELECT count(*) AS n FROM ingestion_chunksearch WHERE owner_id = %(o)s
                                     AND search_vector @@ t.q::tsquery) AS df)
                SELECT c.chunk_id, (SELECT sum(idf) FROM terms WHERE c.search_vector @@ terms.q)
                             * 2.2 / (1 + 1.2 * (0.25 + 0.75 * c.token_count / avglen.a))
                  FROM ingestion_chunksearch AS c CROSS JOIN avglen
                 WHERE c.owner_id = %(o)s AND c.search_vector @@ %(any)s::tsquery
                 ORDER BY 2 DESC, c.chunk_id LIMIT 20""",
                           {"o": member.pk, "terms": [t.tsquery for t in terms], "weights": [t.weight for t in terms],
                            "any": any_term})
            reference = cursor.fetchall()
        assert reference
        found = _text_ranked(member, terms, None, 20)
        assert [row[0] for row in found] == [row[0] for row in reference]
        assert [round(row[1], 6) for row in found] == [round(row[1], 6) for row in reference]


@pytest.mark.django_db(transaction=True)
def test_a_side_connection_lost_between_searches_does_not_fail_the_next_search(ingested, member, settings):
    from django.db import connection

    settings.SEARCH_SIDE_THREADS = 2
    query = "what happens if I pay my premium late"
    expected = _ranking(search_chunks(owner=member, query=query, k=5, mode="hybrid"))
    # when every other session of this database is cut (a restart, a proxy dropping idle connections)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert cursor.fetchone()[0] >= 1  # the side thread's connection was among them
    # then the next hybrid search still answers, the same
    assert _ranking(search_chunks(owner=member, query=query, k=5, mode="hybrid")) == expected
