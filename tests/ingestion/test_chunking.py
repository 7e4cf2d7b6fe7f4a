from ingestion.chunking import chunk_markdown, estimate_tokens


def _pages():
    return [
        "# CHAPTER 1 Benefits\n\n## SECTION 1 Deductible\n\n" + "The deductible is $3,500 per year. " * 30,
        "## SECTION 2 Drugs\n\n| Tier | Cost |\n| 1 | $15 |\n| 2 | $50 |\n\n- first item\n- second item",
    ]


def test_chunks_stay_within_the_token_bound():
    chunks = chunk_markdown(_pages(), max_tokens=80, overlap_tokens=10)
    assert len(chunks) > 3
    assert max(c.token_count for c in chunks) <= 80


def test_chunks_keep_page_span_and_heading_path():
    chunks = chunk_markdown(_pages(), max_tokens=80, overlap_tokens=10)
    first, last = chunks[0], chunks[-1]
    assert first.page_start == 1 and first.heading_path == ["CHAPTER 1 Benefits", "SECTION 1 Deductible"]
    assert last.page_end == 2 and last.heading_path == ["CHAPTER 1 Benefits", "SECTION 2 Drugs"]


def test_a_table_that_fits_is_kept_whole():
    chunks = chunk_markdown(_pages(), max_tokens=80, overlap_tokens=10)
    table_chunks = [c for c in chunks if "| Tier | Cost |" in c.text]
    assert len(table_chunks) == 1 and "| 2 | $50 |" in table_chunks[0].text


def test_chunking_is_deterministic_and_ordinals_are_dense():
    first = chunk_markdown(_pages(), max_tokens=80, overlap_tokens=10)
    second = chunk_markdown(_pages(), max_tokens=80, overlap_tokens=10)
    assert [c.chunk_sha for c in first] == [c.chunk_sha for c in second]
    assert [c.ordinal for c in first] == list(range(len(first)))


def test_consecutive_chunks_overlap():
    chunks = chunk_markdown(["word " * 10 + ". " + ("Sentence number one is here. " * 40)], max_tokens=60,
                            overlap_tokens=20)
    assert len(chunks) >= 2
    tail = chunks[0].text.split("\n\n")[-1]
    assert chunks[1].text.startswith(tail) or estimate_tokens(tail) > 20


def test_embedding_input_carries_the_heading_path():
    chunk = chunk_markdown(_pages(), max_tokens=80, overlap_tokens=10)[0]
    assert chunk.embedding_input().startswith("CHAPTER 1 Benefits > SECTION 1 Deductible\n\n")


def test_empty_pages_give_no_chunks():
    assert chunk_markdown(["", "  "], max_tokens=80, overlap_tokens=10) == []
