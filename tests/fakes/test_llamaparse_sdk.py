"""The official LlamaParse client (llama-parse) against the LlamaParse fake over real HTTP."""
from __future__ import annotations

import warnings

import httpx
import pytest
from fpdf import FPDF

from samples.generate import build_document

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # llama-parse points to its successor on import
    from llama_cloud_services.parse.base import JobFailedException
    from llama_parse import LlamaParse

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def parser_for(providers, settings):
    """A LlamaParse client on the fake; polling without a pause, errors raised unless asked otherwise.

    Its HTTP client keeps no idle connections, so no server thread (and its database session) is
    left waiting on one after the test.
    """

    def make(**options) -> LlamaParse:
        http = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
        options = {"api_key": settings.LLAMAPARSE_API_KEY, "base_url": settings.LLAMAPARSE_BASE_URL,
                   "check_interval": 0, "max_timeout": 60, "ignore_errors": False, "verbose": False,
                   "custom_client": http} | options
        return LlamaParse(**options)

    return make


@pytest.fixture
def policy_pdf(tmp_path):
    path = tmp_path / "policy.pdf"
    path.write_bytes(build_document(4, seed=2))
    return path


def _textless_pdf(tmp_path):
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 50, 50)
    path = tmp_path / "scan.pdf"
    path.write_bytes(bytes(pdf.output()))
    return path


def test_a_generated_pdf_parses_to_markdown_with_headings_and_page_separators(parser_for, policy_pdf):
    # when
    documents = parser_for(result_type="markdown", split_by_page=False).load_data(str(policy_pdf))
    by_page = parser_for(result_type="markdown").load_data(str(policy_pdf))
    # then
    assert len(documents) == 1
    markdown = documents[0].text
    pages = markdown.split("\n---\n")
    assert len(pages) == 4 and [d.text for d in by_page] == pages
    assert pages[0].count("\n## SECTION 1 ") + pages[0].startswith("## SECTION 1 ") == 1
    for number, page in enumerate(pages, start=1):
        assert f"SECTION {number} " in page and f"document 2, page {number}." in page


def test_the_same_bytes_give_the_same_output_from_the_cache(parser_for, policy_pdf):
    parser = parser_for(result_type="markdown")
    first, second = parser.parse(str(policy_pdf)), parser.parse(str(policy_pdf))
    assert first.job_id != second.job_id
    assert [p.md for p in first.pages] == [p.md for p in second.pages]
    assert first.job_metadata.job_pages == 4
    assert (first.job_metadata.job_is_cache_hit, second.job_metadata.job_is_cache_hit) == (False, True)


def test_job_result_gives_pages_items_and_raw_markdown(parser_for, policy_pdf):
    result = parser_for().parse(str(policy_pdf))
    assert [p.page for p in result.pages] == [1, 2, 3, 4]
    headings = [item for item in result.pages[1].items if item.type == "heading"]
    assert headings and headings[0].value.startswith("SECTION 2 ")
    assert [d.text for d in result.get_markdown_documents(split_by_page=True)] == [p.md for p in result.pages]
    assert result.get_markdown() == "\n---\n".join(p.md for p in result.pages)
    assert "#" not in result.get_text()


def test_text_result_and_a_custom_page_separator(parser_for, policy_pdf):
    documents = parser_for(result_type="text", split_by_page=False,
                           page_separator="\n=== page {pageNumber} ===\n").load_data(str(policy_pdf))
    text = documents[0].text
    assert "\n=== page 2 ===\n" in text and "\n=== page 4 ===\n" in text and "=== page 1 ===" not in text
    assert "## " not in text and "SECTION 3 " in text


def test_target_pages_and_max_pages_select_pages(parser_for, policy_pdf):
    picked = parser_for(target_pages="1,3").parse(str(policy_pdf))
    capped = parser_for(max_pages=2).parse(str(policy_pdf))
    assert [p.page for p in picked.pages] == [2, 4]
    assert [p.page for p in capped.pages] == [1, 2]


def test_partitioned_parsing_reads_the_whole_file(parser_for, policy_pdf):
    # the client splits the file into jobs of 3 pages and stops at NO_DATA_FOUND_IN_FILE past the end
    whole = parser_for(split_by_page=False).load_data(str(policy_pdf))[0].text
    partitioned = parser_for(split_by_page=False, partition_pages=3).load_data(str(policy_pdf))[0].text
    assert partitioned == whole


def test_bytes_with_a_file_name_are_accepted(parser_for, policy_pdf):
    documents = parser_for().load_data(policy_pdf.read_bytes(), extra_info={"file_name": "policy.pdf"})
    assert "SECTION 1 " in documents[0].text


def test_a_pdf_without_text_raises_job_failed(parser_for, tmp_path):
    with pytest.raises(JobFailedException) as caught:
        parser_for().load_data(str(_textless_pdf(tmp_path)))
    assert caught.value.status == "ERROR" and caught.value.error_code == "NO_DATA_FOUND_IN_FILE"


def test_a_job_ended_error_by_the_fault_knob_raises_job_failed(parser_for, policy_pdf, faults):
    faults("llamaparse", parse_error_rate=1.0)
    with pytest.raises(JobFailedException) as caught:
        parser_for().load_data(str(policy_pdf))
    assert caught.value.error_code == "INTERNAL_SERVER_ERROR" and caught.value.error_message


def test_an_error_job_is_reported_when_errors_are_ignored(parser_for, policy_pdf, faults):
    faults("llamaparse", parse_error_rate=1.0, parse_error_code="PDF_IS_PROTECTED")
    result = parser_for(ignore_errors=True).parse(str(policy_pdf))
    assert result.status == "ERROR" and result.error_code == "PDF_IS_PROTECTED" and result.pages == []


def test_a_wrong_key_is_refused(parser_for, policy_pdf):
    with pytest.raises(Exception, match="Invalid authentication token"):
        parser_for(api_key="llx-wrong").load_data(str(policy_pdf))
