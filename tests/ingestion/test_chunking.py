import pytest

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


def _long_table_page(rows: int) -> list[str]:
    table = "\n".join(["| Service | Network | Out of network |"]
                      + [f"| Service number {i} with a longer name | ${i}0 copay | {i}0% coinsurance |" for i in range(rows)])
    return ["## SECTION 1 Costs\n\n" + table]


def test_a_table_too_long_for_one_chunk_is_split_between_rows_and_repeats_its_header():
    chunks = chunk_markdown(_long_table_page(40), max_tokens=120, overlap_tokens=0)
    pieces = [c for c in chunks if "| Service number" in c.text]
    assert len(pieces) > 2
    for piece in pieces:
        lines = [line for line in piece.text.split("\n") if line.startswith("|")]
        assert lines[0] == "| Service | Network | Out of network |"
        assert all(line.endswith("|") and line.count("|") == 4 for line in lines)  # no row cut in half
    rows = [line for c in pieces for line in c.text.split("\n") if line.startswith("| Service number")]
    assert len(set(rows)) == 40


def test_a_list_too_long_for_one_chunk_is_split_between_items():
    items = [f"- Item {i}: covered when medically necessary and approved in advance by the plan." for i in range(30)]
    chunks = chunk_markdown(["## Covered services\n\n" + "\n".join(items)], max_tokens=100, overlap_tokens=0)
    seen = [line for c in chunks for line in c.text.split("\n") if line.startswith("- ")]
    assert len(chunks) > 2 and set(seen) == set(items)


def test_text_before_the_first_heading_takes_the_heading_path_of_the_section_it_leads_into():
    chunks = chunk_markdown(["Harborview Health Plan letterhead\n\n## Your Right to Appeal\n\nYou may appeal within 180 days."],
                            max_tokens=200, overlap_tokens=0)
    assert chunks[0].heading_path == ["Your Right to Appeal"]


def test_a_heading_opens_the_chunk_of_its_section_instead_of_closing_the_one_before():
    pages = ["# A\n\n" + "word " * 260 + "\n\nShort tail para here.\n\n### B\n\n" + "zzz " * 100]
    chunks = chunk_markdown(pages, max_tokens=350, overlap_tokens=50)
    assert not any(c.text.rstrip().endswith("### B") for c in chunks)
    under_b = [c for c in chunks if "zzz" in c.text]
    assert under_b and all(c.heading_path == ["A", "B"] and c.text.startswith("### B") for c in under_b)
    assert "Short tail" not in under_b[0].text  # no text of the section before is carried into it


def test_a_heading_on_the_next_page_does_not_stretch_the_chunk_before_to_that_page():
    pages = ["# A\n\n" + "word " * 300, "## B\n\n" + "zzz " * 200]
    first, second = chunk_markdown(pages, max_tokens=350, overlap_tokens=50)[:2]
    assert (first.page_start, first.page_end) == (1, 1) and second.page_start == 2


@pytest.mark.parametrize("text", ["保险" * 400, "x" * 5000, "a " * 340 + "1234567890" * 4],
                         ids=["cjk-without-spaces", "one-long-run", "a-long-number-at-the-end"])
def test_text_without_spaces_is_cut_within_the_bound_and_nothing_is_lost(text):
    chunks = chunk_markdown([text], max_tokens=350, overlap_tokens=50)
    assert max(c.token_count for c in chunks) <= 350
    assert "".join(c.text.replace(" ", "") for c in chunks).count(text.replace(" ", "")[-40:]) >= 1
    assert sum(len(c.text.replace(" ", "")) for c in chunks) >= len(text.replace(" ", ""))


def test_each_piece_of_a_split_table_carries_the_header_and_its_delimiter_line():
    rows = [f"| Service number {i} with a longer name | ${i}0 copay |" for i in range(40)]
    page = "## Costs\n\n" + "\n".join(["| Service | Network |", "| --- | --- |"] + rows)
    pieces = [c for c in chunk_markdown([page], max_tokens=120, overlap_tokens=0) if "| Service number" in c.text]
    assert len(pieces) > 2
    for piece in pieces:
        lines = [line for line in piece.text.split("\n") if line.startswith("|")]
        assert lines[:2] == ["| Service | Network |", "| --- | --- |"]
    assert len({line for c in pieces for line in c.text.split("\n") if line.startswith("| Service number")}) == 40


def test_the_local_parser_keeps_a_list_as_one_block_so_it_is_chunked_whole():
    from ingestion.providers.pdf_text import page_to_markdown

    page = page_to_markdown("Covered services\nYou can get these.\n• Ambulance rides\n• Emergency care that\n"
                            "wraps onto a second line\n• Urgent care\n\nAfter the list, a paragraph.")
    assert "- Ambulance rides\n- Emergency care that wraps onto a second line\n- Urgent care" in page
    chunks = chunk_markdown(["word " * 300 + "\n\n" + page], max_tokens=350, overlap_tokens=50)
    with_list = [c for c in chunks if "- Ambulance rides" in c.text]
    assert len(with_list) == 1 and "- Urgent care" in with_list[0].text


def test_the_local_parser_drops_running_lines_only_at_the_page_edges():
    from ingestion.providers.pdf_text import page_to_markdown

    page = page_to_markdown("Plan name 2025\nNot covered\nBenefit\nCopay\n30\nDeductible\nNot covered\n"
                            "Coinsurance\nfooter\nthe end\n7", drop={"not covered", "plan name #"})
    assert "Plan name" not in page and page.count("Not covered") == 1  # the top one is a running line
    assert "30" in page and not page.rstrip().endswith("7")  # a cell in the body stays; the page number goes
