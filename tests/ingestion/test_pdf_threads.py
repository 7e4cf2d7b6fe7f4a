"""PDFium is not thread-safe: threaded web workers and the fake parser read PDFs at the same time."""
from concurrent.futures import ThreadPoolExecutor

from ingestion.providers import pdf_text
from samples.generate import build_document


def test_pdfs_read_in_many_threads_at_once_all_come_out_whole():
    documents = [build_document(pages, seed=pages) for pages in (30, 40, 50, 60)]
    expected = [pdf_text.extract_page_texts(data) for data in documents]

    def read(index):
        data = documents[index % len(documents)]
        return index % len(documents), pdf_text.page_count(data), pdf_text.extract_page_texts(data)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(read, range(48)))
    for index, pages, texts in results:
        assert pages == len(expected[index]) and texts == expected[index]
