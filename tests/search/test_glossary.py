"""The member's words reach the policy's: glossary expansion and slash-separated terms, in text search."""
import pytest
from model_bakery import baker

from ingestion.glossary import policy_terms
from ingestion.models import Chunk
from ingestion.pipeline.bulk import index_chunks
from ingestion.search import query_terms, search_chunks


def test_member_phrases_are_matched_as_whole_words_in_any_case():
    assert policy_terms("How much is a trip to the ER?")[:1] == ["emergency room"]
    assert "prenatal" in policy_terms("checkups while I'm Pregnant")
    # "er" inside a word, or "mail" inside "email", is not the member's phrase
    assert "emergency room" not in policy_terms("Where do I send the paper form?")
    assert "mail order" not in policy_terms("What is the email address?")
    assert policy_terms("What is the deductible?") == []


@pytest.mark.django_db
def test_glossary_terms_are_phrases_weighted_below_the_members_own_words(settings):
    settings.SEARCH_EXPANSION_WEIGHT = 0.5
    terms = query_terms("trip to the ER")
    own = {t.tsquery: t.weight for t in terms if t.weight == 1.0}
    added = {t.tsquery: t.weight for t in terms if t.weight != 1.0}
    assert set(own) == {"'trip'", "'er'"}
    assert added["'emerg' <-> 'room'"] == 0.5
    # and 0 turns the glossary off
    settings.SEARCH_EXPANSION_WEIGHT = 0
    assert [t.tsquery for t in query_terms("trip to the ER")] == ["'trip'", "'er'"]


def _passage(owner, document, ordinal, text):
    chunk = baker.make(Chunk, id=Chunk.make_id(document.id, "t", ordinal), document=document, owner=owner,
                       ordinal=ordinal, text=text, chunker_version="t", page_start=ordinal + 1, page_end=ordinal + 1)
    index_chunks(document.id)  # its full-text entry, as the chunk stage builds it
    return chunk


@pytest.mark.django_db
def test_a_question_in_the_members_words_finds_the_passage_in_the_policys(member, settings):
    # given a policy whose answer says "prenatal", never "pregnant" or "checkups"
    document = baker.make("ingestion.Document", owner=member, status="complete")
    answer = _passage(member, document, 0, "Maternity and Newborn Care. Prenatal visits are covered at no charge.")
    _passage(member, document, 1, "Premiums are due on the first day of each month.")
    _passage(member, document, 2, "Submit claims within 365 days of the service.")
    # when the member asks in their own words
    settings.SEARCH_EXPANSION_WEIGHT = 0
    assert search_chunks(owner=member, query="Do I pay for checkups while I'm pregnant?", mode="text") == []
    settings.SEARCH_EXPANSION_WEIGHT = 0.5
    hits = search_chunks(owner=member, query="Do I pay for checkups while I'm pregnant?", mode="text")
    # then the glossary's terms find the policy's passage
    assert hits and hits[0].chunk_id == str(answer.id)


@pytest.mark.django_db
def test_words_joined_by_slashes_are_found_one_by_one(member):
    # given a Summary of Benefits row written the way the uniform template writes it
    document = baker.make("ingestion.Document", owner=member, status="complete")
    row = _passage(member, document, 0, "Preventive care/screening/immunization: No charge. Specialist $60 copay/visit")
    _passage(member, document, 1, "Emergency room care: $400 copay per visit, then 20% coinsurance")
    # then each word is a term of its own, in the passage and in the question
    assert [h.chunk_id for h in search_chunks(owner=member, query="screening", mode="text")] == [str(row.id)]
    assert str(row.id) in [h.chunk_id for h in search_chunks(owner=member, query="copay/visit", mode="text")]
    hits = search_chunks(owner=member, query="preventive care immunization", mode="text")
    assert hits[0].chunk_id == str(row.id)


@pytest.mark.django_db(transaction=True)
def test_relative_score_fusion_orders_by_the_scaled_scores(ingested, member, settings):
    settings.SEARCH_FUSION = "relative"
    hits = search_chunks(owner=member, query="out-of-pocket maximum per family", k=5, mode="hybrid")
    assert hits and "Out-of-Pocket Maximum" in " ".join(hits[0].heading_path)
    assert [h.fused_score for h in hits] == sorted((h.fused_score for h in hits), reverse=True)
    assert all(0 <= h.fused_score <= 2 for h in hits)  # two modes, each scaled to 0..1, weights 1
