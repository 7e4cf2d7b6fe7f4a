"""PDF to per-page markdown with PDFium (pypdfium2): the local parser backend's engine.

Text comes from PDFium's text layer; markdown structure is inferred from the layout the text
shows: numbered chapter/section lines and short upper-case lines become headings, bullets become
list items, wrapped lines are joined into paragraphs, and running headers/footers repeated on most
pages are dropped so they do not pollute every chunk.
"""
from __future__ import annotations

import re
import threading
from collections import Counter

import pypdfium2 as pdfium

from ingestion.errors import PermanentError

PDF_MAGIC = b"%PDF-"
# PDFium is not thread-safe, not even across different documents: one thread at a time in this
# process (threaded web servers validate uploads, and the fake parser extracts text, concurrently).
_PDFIUM = threading.RLock()

_BULLET = re.compile(r"^\s*(?:[•●▪◦‣∙·\-\*]|\d{1,2}[.)])\s+")
_CHAPTER = re.compile(r"^(?:CHAPTER|Chapter|PART|Part|ARTICLE|Article)\s+[0-9IVXL]+\b")
_SECTION = re.compile(r"^(?:SECTION|Section)\s+\d+(?:\.\d+)?\b")
_SUBSECTION = re.compile(r"^(?:SECTION|Section)\s+\d+\.\d+\b")
_NUMBERED = re.compile(r"^\d+(?:\.\d+)*\s+[A-Z][A-Za-z]")
_PAGE_NUMBER = re.compile(r"^\s*(?:page\s*)?\d+(?:\s*(?:of|/)\s*\d+)?\s*$", re.I)
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")


def check_pdf_bytes(data: bytes) -> None:
    """Raise PermanentError unless ``data`` starts like a PDF."""
    if not data:
        raise PermanentError("PARSE_EMPTY_FILE", "The file is empty. Upload the PDF again; the copy we received has no bytes.")
    if not data.lstrip()[:5] == PDF_MAGIC:
        raise PermanentError(
            "PARSE_NOT_A_PDF",
            "The file is not a PDF (it does not start with %PDF-). Export or scan the document to PDF and upload that file.",
        )


def open_pdf(data: bytes) -> pdfium.PdfDocument:
    """Open PDF bytes, turning PDFium's failures into coded, actionable errors. Callers hold _PDFIUM
    for as long as they use the document."""
    check_pdf_bytes(data)
    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        text = str(exc).lower()
        if "password" in text:
            raise PermanentError(
                "PARSE_ENCRYPTED_PDF",
                "The PDF is password-protected. Remove the password (print or save it as a new PDF) and upload it again.",
            ) from exc
        raise PermanentError(
            "PARSE_CORRUPT_PDF",
            "The PDF is damaged or incomplete and cannot be read. Download or export it again and upload the new copy.",
        ) from exc


def page_count(data: bytes) -> int:
    with _PDFIUM:
        pdf = open_pdf(data)
        try:
            return len(pdf)
        finally:
            pdf.close()


def extract_page_texts(data: bytes) -> list[str]:
    """Raw text of each page, in order."""
    with _PDFIUM:
        pdf = open_pdf(data)
        texts: list[str] = []
        try:
            for index in range(len(pdf)):
                page = pdf[index]
                textpage = page.get_textpage()
                try:
                    texts.append(textpage.get_text_range())
                finally:
                    textpage.close()
                    page.close()
        except pdfium.PdfiumError as exc:
            raise PermanentError(
                "PARSE_CORRUPT_PDF",
                "A page of the PDF is damaged and cannot be read. Export the document to PDF again and upload the new "
                "copy.",
            ) from exc
        finally:
            pdf.close()
        return texts


def _normalise_running_line(line: str) -> str:
    return re.sub(r"\d+", "#", line.strip().lower())


def _running_lines(pages: list[list[str]]) -> set[str]:
    """Running headers/footers: lines (digits ignored) at the top or bottom of many pages.

    A chapter's running header repeats only over that chapter, so the bar is 8% of the pages
    (at least 4), not a majority.
    """
    if len(pages) < 4:
        return set()
    counts: Counter[str] = Counter()
    for lines in pages:
        edge = {_normalise_running_line(line) for line in lines[:3] + lines[-3:] if line.strip()}
        counts.update(edge)
    threshold = max(4, len(pages) * 0.08)
    return {line for line, count in counts.items() if count >= threshold}


def _heading_level(line: str) -> int | None:
    stripped = line.strip()
    if not stripped or len(stripped) > 100:
        return None
    if _CHAPTER.match(stripped) and not stripped.endswith("."):
        return 1
    if stripped.endswith("."):
        return None
    if _SUBSECTION.match(stripped):
        return 3
    if _SECTION.match(stripped):
        return 2
    letters = [c for c in stripped if c.isalpha()]
    words = stripped.split()
    if (len(letters) >= 4 and all(c.isupper() for c in letters) and len(words) <= 12
            and not _SENTENCE_END.search(stripped)):
        return 2
    if _NUMBERED.match(stripped) and len(words) <= 10 and not _SENTENCE_END.search(stripped):
        return 3
    return None


def page_to_markdown(text: str, drop: set[str] = frozenset()) -> str:
    """Turn one page's raw text into markdown blocks separated by blank lines (a list's items are one
    block, a line each)."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []  # the list being read, item by item

    def flush_items() -> None:
        if items:
            blocks.append("\n".join(items))
            items.clear()

    def flush() -> None:
        if paragraph and paragraph[0].startswith("- "):
            items.append(" ".join(paragraph))  # a finished item: the list may go on
        elif paragraph:
            flush_items()
            blocks.append(" ".join(paragraph))
        paragraph.clear()

    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    content = [n for n, line in enumerate(lines) if line.strip()]
    # Running headers and footers, and page numbers, are dropped where they run: in the page's first
    # and last lines, never from the body (a "Not covered" line, a table cell "30").
    edges = set(content[:3] + content[-3:])
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            flush()
            if not (number + 1 < len(lines) and _BULLET.match(lines[number + 1])):
                flush_items()  # a blank line ends a list, unless the next item follows it
            continue
        if number in edges and (_normalise_running_line(stripped) in drop or _PAGE_NUMBER.match(stripped)):
            continue
        if not paragraph and not items and blocks and blocks[-1].startswith("#") and stripped[:1].islower():
            # A heading wrapped onto a second line.
            blocks[-1] = f"{blocks[-1]} {stripped}"
            continue
        level = _heading_level(stripped)
        if level:
            flush()
            flush_items()
            blocks.append("#" * level + " " + stripped)
            continue
        if stripped.startswith("|") or "\t" in stripped or re.search(r"\S {3,}\S", line):
            # Columns separated by tabs or wide gaps: a table row; keep rows as lines of one block.
            flush()
            flush_items()
            cells = [cell.strip() for cell in re.split(r"\t| {3,}", stripped.strip("|")) if cell.strip()]
            row = "| " + " | ".join(cells) + " |"
            if blocks and blocks[-1].startswith("| ") and not blocks[-1].endswith("\n"):
                blocks[-1] = blocks[-1] + "\n" + row
            else:
                blocks.append(row)
            continue
        if _BULLET.match(stripped):
            flush()
            paragraph.append("- " + _BULLET.sub("", stripped, count=1))
            continue
        if not paragraph:
            flush_items()  # text that is not an item's continuation ends the list
        if paragraph and _SENTENCE_END.search(paragraph[-1]) and stripped[:1].isupper() and not paragraph[0].startswith("- "):
            flush()
        paragraph.append(stripped)
    flush()
    flush_items()
    return "\n\n".join(blocks)


def pdf_to_markdown_pages(data: bytes) -> list[str]:
    """Markdown of each page of a PDF. Raises PermanentError for bad input or a PDF without text."""
    texts = extract_page_texts(data)
    split = [[line for line in t.replace("\r\n", "\n").replace("\r", "\n").split("\n")] for t in texts]
    drop = _running_lines(split)
    pages = [page_to_markdown(text, drop) for text in texts]
    if not any(page.strip() for page in pages):
        raise PermanentError(
            "PARSE_NO_TEXT",
            "No text could be read from the PDF (it may be a scan without a text layer). Upload a PDF with "
            "selectable text, or run it through OCR first.",
        )
    return pages
