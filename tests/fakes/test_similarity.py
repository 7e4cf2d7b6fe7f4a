"""Fake vectors are meaningful: a query made of a chunk's words finds that chunk among all chunks."""
from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from fakes.embeddings import STOPWORDS, features
from ingestion.chunking import chunk_markdown
from ingestion.providers.openai_embeddings import embeddings_for_texts
from ingestion.providers.pdf_text import pdf_to_markdown_pages
from samples.generate import build_document

pytestmark = pytest.mark.django_db(transaction=True)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
QUERY_WORDS = 6
QUERIES_PER_CHUNK = 3
_WORD = re.compile(r"[A-Za-z]{3,}")


def _sample_chunks() -> list:
    documents = [path.read_bytes() for path in sorted(SAMPLES.glob("*.pdf"))] + [build_document(12, seed=0)]
    chunks = []
    for data in documents:
        chunks += chunk_markdown(pdf_to_markdown_pages(data), max_tokens=settings.CHUNK_MAX_TOKENS,
                                 overlap_tokens=settings.CHUNK_OVERLAP_TOKENS)
    return chunks


def _words(text: str) -> set[str]:
    return {feature for feature, _ in features(text) if " " not in feature}


def _queries(chunks: list) -> list[tuple[int, str]]:
    """(chunk index, query) pairs: words drawn from one chunk that no other chunk holds all of."""
    rng = random.Random(7)
    vocabularies = [_words(chunk.embedding_input()) for chunk in chunks]
    queries = []
    for index, chunk in enumerate(chunks):
        candidates = sorted({w.lower() for w in _WORD.findall(chunk.text)} - STOPWORDS)
        for _ in range(QUERIES_PER_CHUNK):
            query = " ".join(rng.sample(candidates, QUERY_WORDS))
            holders = [i for i, vocabulary in enumerate(vocabularies) if _words(query) <= vocabulary]
            if holders == [index]:  # words in another chunk too (an overlap) name no single chunk
                queries.append((index, query))
    return queries


def test_a_query_of_a_chunks_words_ranks_that_chunk_first(providers):
    # given every chunk of the sample documents, embedded through the fake over HTTP
    chunks = _sample_chunks()
    texts = [chunk.embedding_input() for chunk in chunks]
    matrix = np.array(embeddings_for_texts(texts, [1] * len(texts)).vectors)
    queries = _queries(chunks)
    # when each query is embedded the same way and compared by cosine with every chunk
    query_vectors = np.array(embeddings_for_texts([q for _, q in queries], [1] * len(queries)).vectors)
    best = np.argmax(query_vectors @ matrix.T, axis=1)
    # then the chunk the words came from ranks first
    hits = sum(int(best[n] == index) for n, (index, _) in enumerate(queries))
    missed = [query for n, (index, query) in enumerate(queries) if best[n] != index]
    print(f"\nsimilarity: {hits}/{len(queries)} queries ranked their chunk first "
          f"({hits / len(queries):.1%}) over {len(chunks)} chunks; missed: {missed}")
    assert len(chunks) >= 20 and len(queries) >= 2 * len(chunks)
    # Measured: 70/74 (94.6%) with 1536-d vectors; without IDF, words common to many chunks can still
    # let a shorter chunk holding fewer of them win.
    assert hits / len(queries) >= 0.9, missed
