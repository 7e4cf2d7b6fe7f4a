"""Retrieval quality on a labelled set of questions: hit@1, hit@5 and MRR per search mode.

The labelled file names documents and, for each question, the passages that answer it: a document,
its pages, and a phrase the passage contains. A retrieved passage is a hit when it belongs to that
document, its page span includes one of those pages, and its text contains the phrase; the phrase
keeps the label independent of chunk size (the same file grades 200- and 800-token chunks).
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections
from django.test.utils import override_settings

from ingestion import services, storage
from ingestion.chunking import CHUNKER_VERSION, chunk_markdown
from ingestion.errors import PermanentError
from ingestion.models import Chunk, Document
from ingestion.pipeline.runner import run_job_sync
from ingestion.providers import pdf_text
from ingestion.providers.embeddings import active_space
from ingestion.search import MODES, SearchHit, search_chunks
from ingestion.statuses import Status

# MRR counts the first hit within this many results (MRR@10).
MRR_DEPTH = 10


@dataclass
class Answer:
    document: str
    pages: list[int]
    contains: str

    def matches(self, hit: SearchHit) -> bool:
        return (hit.filename == self.document and any(hit.page_start <= p <= hit.page_end for p in self.pages)
                and self.contains.lower() in hit.text.lower())


@dataclass
class LabelledQuery:
    id: str
    query: str
    answers: list[Answer]


@dataclass
class LabelledSet:
    documents: list[Path]
    queries: list[LabelledQuery]


@dataclass
class ModeResult:
    mode: str
    hit_at_1: float
    hit_at_5: float
    mrr: float
    first_hit_ranks: dict[str, int | None] = field(default_factory=dict)  # query id -> rank of first hit


def labelled_set_load(path: Path) -> LabelledSet:
    """Read and check a labelled file: every answer phrase must be on the page it is labelled with."""
    try:
        raw = json.loads(path.read_text())
        base = (path.parent / raw.get("documents_dir", ".")).resolve()
        documents = [base / name for name in raw["documents"]]
        queries = [LabelledQuery(q["id"], q["query"], [Answer(a["document"], [int(p) for p in a["pages"]],
                                                               a["contains"]) for a in q["answers"]])
                   for q in raw["queries"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PermanentError("EVAL_BAD_LABELS", f"{path} is not a labelled query file ({exc.__class__.__name__}: "
                             f"{exc}). See samples/eval/queries.json for the format.") from exc
    pages_by_name = {}
    for document in documents:
        if not document.exists():
            raise PermanentError("EVAL_MISSING_DOCUMENT", f"{document} is listed in {path} but does not exist.")
        pages_by_name[document.name] = [" ".join(page.split()) for page in
                                        pdf_text.pdf_to_markdown_pages(document.read_bytes())]
    for query in queries:
        if not query.answers:
            raise PermanentError("EVAL_BAD_LABELS", f"Query {query.id} has no answers; label at least one.")
        for answer in query.answers:
            pages = pages_by_name.get(answer.document)
            if pages is None:
                raise PermanentError("EVAL_BAD_LABELS", f"Query {query.id} cites {answer.document}, which is not "
                                     f"in the file's documents list.")
            if not any(1 <= p <= len(pages) and answer.contains.lower() in pages[p - 1].lower()
                       for p in answer.pages):
                raise PermanentError("EVAL_BAD_LABELS", f"Query {query.id}: '{answer.contains}' is not on page(s) "
                                     f"{answer.pages} of {answer.document}. Fix the label.")
    return LabelledSet(documents, queries)


def _chunks_current(document: Document) -> bool:
    """True when the stored passages are what the chunker makes now, each with a vector of the active model."""
    pages = storage.parsed_pages_read(document.parsed_path)
    expected = [d.chunk_sha for d in chunk_markdown(pages, max_tokens=settings.CHUNK_MAX_TOKENS,
                                                    overlap_tokens=settings.CHUNK_OVERLAP_TOKENS)]
    space = active_space()
    stored = list(Chunk.objects.filter(document=document, chunker_version=CHUNKER_VERSION)
                  .order_by("ordinal").values_list("chunk_sha", "vector__model", "vector__dimensions"))
    return ([sha for sha, _, _ in stored] == expected
            and all(m == space.model and d == space.dimensions for _, m, d in stored)
            and Chunk.objects.filter(document=document).count() == len(stored))


def eval_documents_ingest(*, username: str, documents: list[Path]) -> list[Document]:
    """Make sure ``username`` has every document ingested, chunked with the current settings and
    embedded with the active model; runs the pipeline in this process where needed. Safe to run twice."""
    owner = services.user_get_or_create(username=username)
    ready = []
    with override_settings(PARSER_BACKEND="local"):
        for path in documents:
            result = services.document_upload(owner=owner, data=path.read_bytes(), filename=path.name)
            document = result.document
            if document.status != Status.COMPLETE:
                job = document.current_job
                if job is None or job.status in (Status.DUPLICATE, Status.CANCELLED) or job.status.startswith("failed"):
                    job = services.job_start(document=document)
                run_job_sync(job.id)
            document.refresh_from_db()
            if document.status == Status.COMPLETE and not _chunks_current(document):
                run_job_sync(services.job_start(document=document, from_stage="chunk").id)
                document.refresh_from_db()
            if document.status != Status.COMPLETE:
                job = document.current_job
                raise PermanentError("EVAL_INGEST_FAILED", f"{path.name} did not finish processing ({document.status}: "
                                     f"{job.last_error_code} {job.last_error_message}).")
            close_old_connections()
            ready.append(document)
    return ready


def first_hit_rank(hits: list[SearchHit], answers: list[Answer]) -> int | None:
    for rank, hit in enumerate(hits, start=1):
        if any(answer.matches(hit) for answer in answers):
            return rank
    return None


def evaluate_mode(*, owner, labelled: LabelledSet, mode: str, document_ids=None) -> ModeResult:
    """hit@1, hit@5 and MRR@10 of ``mode`` over the labelled queries, for ``owner``'s documents."""
    if mode not in MODES:
        raise PermanentError("SEARCH_UNKNOWN_MODE", f"Unknown search mode '{mode}': use hybrid, vector or text.")
    ranks: dict[str, int | None] = {}
    for query in labelled.queries:
        hits = search_chunks(owner=owner, query=query.query, k=MRR_DEPTH, mode=mode, document_ids=document_ids)
        ranks[query.id] = first_hit_rank(hits, query.answers)
    count = len(labelled.queries)
    return ModeResult(
        mode=mode,
        hit_at_1=sum(1 for r in ranks.values() if r == 1) / count,
        hit_at_5=sum(1 for r in ranks.values() if r is not None and r <= 5) / count,
        mrr=sum(1 / r for r in ranks.values() if r is not None) / count,
        first_hit_ranks=ranks,
    )


@contextlib.contextmanager
def providers_reachable():
    """While configured for the local fake OpenAI, serve it from this process (whatever else listens on
    the default port is left alone); a real provider URL, or one a test server set, is used as is."""
    from fakes.server.background import serve_in_thread

    local_fakes = settings.OPENAI_BASE_URL.startswith(settings.LOCAL_SERVER_URL + "/fakes/")
    if settings.EMBEDDING_BACKEND != "openai" or not local_fakes or not settings.FAKES_ENABLED:
        yield
        return
    with serve_in_thread() as base_url:
        with override_settings(OPENAI_BASE_URL=settings.OPENAI_BASE_URL.replace(settings.LOCAL_SERVER_URL, base_url)):
            yield
