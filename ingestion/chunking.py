"""Markdown-aware, token-bounded chunking that keeps page spans and heading paths for citations.

Blocks (headings, paragraphs, list runs, tables) are packed into chunks of at most
``max_tokens``; a table or list is kept whole when it fits, and split by rows/items otherwise; a
long paragraph is split at sentence boundaries. Consecutive chunks share about ``overlap_tokens``
of trailing text so an answer spanning a boundary is found from either side.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

CHUNKER_VERSION = "md-v3"

# Token counts are estimated, not computed with the provider's BPE tokenizer: tokenizer files
# would have to be downloaded at run time. English prose averages ~0.75 words per token; the
# estimate counts word pieces and punctuation and errs high, which keeps requests within limits.
_TOKEN_PIECE = re.compile(r"[A-Za-z]{1,6}|\d{1,3}|[^\sA-Za-z\d]")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?;])\s+")


def estimate_tokens(text: str) -> int:
    return len(_TOKEN_PIECE.findall(text))


@dataclass
class Block:
    text: str
    page: int
    heading_path: tuple[str, ...]
    tokens: int
    kind: str = "text"  # text | heading | table | list


@dataclass
class ChunkDraft:
    ordinal: int
    text: str
    page_start: int
    page_end: int
    heading_path: list[str]
    token_count: int
    chunk_sha: str = field(default="")

    def embedding_input(self) -> str:
        """What is embedded: the heading path gives the chunk its context (chapter, section)."""
        if self.heading_path:
            return " > ".join(self.heading_path) + "\n\n" + self.text
        return self.text


def _split_long(text: str, max_tokens: int) -> list[str]:
    """Split an over-long block at sentence boundaries, then at word boundaries."""
    pieces: list[str] = []
    current: list[str] = []
    current_tokens = 0
    units = _SENTENCE_SPLIT.split(text)
    expanded: list[str] = []
    for unit in units:
        if estimate_tokens(unit) <= max_tokens:
            expanded.append(unit)
            continue
        part: list[str] = []
        for word in unit.split(" "):
            # a run without spaces longer than the bound (a URL, CJK text) is cut between token pieces
            for piece in [word] if estimate_tokens(word) <= max_tokens else _cut_run(word, max_tokens):
                if part and estimate_tokens(" ".join(part + [piece])) > max_tokens:
                    expanded.append(" ".join(part))
                    part = []
                part.append(piece)
        if part:
            expanded.append(" ".join(part))
    for unit in expanded:
        tokens = estimate_tokens(unit)
        if current and current_tokens + tokens > max_tokens:
            pieces.append(" ".join(current))
            current, current_tokens = [], 0
        current.append(unit)
        current_tokens += tokens
    if current:
        pieces.append(" ".join(current))
    return pieces


def _cut_run(run: str, max_tokens: int) -> list[str]:
    """A run of text without spaces, cut into pieces of at most ``max_tokens`` estimated tokens."""
    pieces, start, count = [], 0, 0
    for match in _TOKEN_PIECE.finditer(run):
        if count == max_tokens:
            pieces.append(run[start:match.start()])
            start, count = match.start(), 0
        count += 1
    pieces.append(run[start:])
    return pieces


_TABLE_DELIMITER = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def markdown_blocks(pages: list[str], max_tokens: int) -> list[Block]:
    """Flatten per-page markdown into blocks carrying their page and heading path."""
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    for page_number, markdown in enumerate(pages, start=1):
        for raw in re.split(r"\n\s*\n", markdown):
            raw = raw.strip()
            if not raw:
                continue
            match = _HEADING.match(raw)
            if match and "\n" not in raw:
                level, title = len(match.group(1)), match.group(2).strip()
                path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
                blocks.append(Block(raw, page_number, tuple(t for _, t in path), estimate_tokens(raw), "heading"))
                continue
            kind = "table" if raw.startswith("|") else "list" if raw.startswith(("- ", "* ")) else "text"
            heading_path = tuple(t for _, t in path)
            tokens = estimate_tokens(raw)
            if tokens <= max_tokens:
                blocks.append(Block(raw, page_number, heading_path, tokens, kind))
                continue
            if kind in ("table", "list"):
                # Split by rows/items, each piece keeping the table's header row.
                rows = raw.split("\n") if kind == "table" else re.split(r"\n(?=[-*] )", raw)
                header = rows[0] if kind == "table" else ""
                if kind == "table" and len(rows) > 1 and _TABLE_DELIMITER.match(rows[1]):
                    # the header row and its |---| line travel together: each piece is a table of its own
                    header, rows = rows[0] + "\n" + rows[1], [rows[0] + "\n" + rows[1]] + rows[2:]
                group: list[str] = []
                for row in rows:
                    candidate = "\n".join(group + [row])
                    if group and estimate_tokens(candidate) > max_tokens:
                        blocks.append(Block("\n".join(group), page_number, heading_path,
                                            estimate_tokens("\n".join(group)), kind))
                        group = [header] if header and row != header else []
                    if estimate_tokens(row) > max_tokens:
                        for piece in _split_long(row, max_tokens):
                            blocks.append(Block(piece, page_number, heading_path, estimate_tokens(piece), kind))
                        continue
                    group.append(row)
                if group and group != [header]:
                    blocks.append(Block("\n".join(group), page_number, heading_path,
                                        estimate_tokens("\n".join(group)), kind))
                continue
            for piece in _split_long(raw, max_tokens):
                blocks.append(Block(piece, page_number, heading_path, estimate_tokens(piece), kind))
    return blocks


def chunk_markdown(pages: list[str], *, max_tokens: int, overlap_tokens: int) -> list[ChunkDraft]:
    """Chunks of at most ``max_tokens`` (estimated) over per-page markdown, deterministic."""
    blocks = markdown_blocks(pages, max_tokens)
    chunks: list[ChunkDraft] = []
    current: list[Block] = []
    current_tokens = 0

    def emit() -> None:
        nonlocal current, current_tokens
        # Headings at the end belong to what follows them: they open the next chunk, not close this one.
        trailing: list[Block] = []
        while current and current[-1].kind == "heading":
            trailing.insert(0, current.pop())
        body = [b for b in current if b.kind != "heading"]
        if not body:
            current = current + trailing
            return
        text = "\n\n".join(b.text for b in current)
        # The section the passage is about: the first one its content sits under (text before the
        # document's first heading, such as a letterhead, has none).
        heading_path = list(next((b.heading_path for b in current if b.heading_path), ()))
        chunks.append(ChunkDraft(
            ordinal=len(chunks), text=text, page_start=current[0].page, page_end=current[-1].page,
            heading_path=heading_path, token_count=estimate_tokens(text),
            chunk_sha=hashlib.sha256(text.encode()).hexdigest(),
        ))
        if trailing:  # the next chunk starts a section: no text of this one is carried into it
            current, current_tokens = trailing, sum(b.tokens for b in trailing)
            return
        # Overlap: carry trailing non-heading blocks worth up to overlap_tokens into the next chunk.
        carry: list[Block] = []
        carried = 0
        for block in reversed(body):
            if carried + block.tokens > overlap_tokens:
                break
            carry.insert(0, block)
            carried += block.tokens
        current, current_tokens = carry, carried

    for block in blocks:
        starts_section = block.kind == "heading" and block.text.startswith(("# ", "## "))
        fits = current_tokens + block.tokens <= max_tokens
        if current and (not fits or (starts_section and current_tokens > max_tokens // 4)):
            emit()
            if block.kind == "heading" or current_tokens + block.tokens > max_tokens:
                # A new section does not carry text over from the previous one; its own headings stay
                # with it when they fit.
                headings = [b for b in current if b.kind == "heading"]
                if sum(b.tokens for b in headings) + block.tokens > max_tokens:
                    headings = []
                current, current_tokens = headings, sum(b.tokens for b in headings)
        if block.kind == "heading" and current and all(b.kind == "heading" for b in current):
            current, current_tokens = [], 0
        current.append(block)
        current_tokens += block.tokens
    emit()
    return chunks
