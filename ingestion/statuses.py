"""The job/document status vocabulary and every allowed transition, in one table.

The names are the public API (kept from the system this replaces so its clients keep working).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import models


class Status(models.TextChoices):
    UPLOADED = "uploaded"
    PARSE_QUEUED = "parse_queued"
    PARSED = "parsed"
    PARSE_VALIDATED = "parse_validated"
    CHUNKING = "chunking"
    CHUNKS_STORED = "chunks_stored"
    EMBEDDING_QUEUED = "embedding_queued"
    EMBEDDING_IN_PROGRESS = "embedding_in_progress"
    EMBEDDINGS_STORED = "embeddings_stored"
    COMPLETE = "complete"
    FAILED_PARSE = "failed_parse"
    FAILED_CHUNKING = "failed_chunking"
    FAILED_EMBEDDING = "failed_embedding"
    DUPLICATE = "duplicate"
    CANCELLED = "cancelled"


S = Status
TERMINAL = frozenset({S.COMPLETE, S.FAILED_PARSE, S.FAILED_CHUNKING, S.FAILED_EMBEDDING, S.DUPLICATE, S.CANCELLED})
FAILED = frozenset({S.FAILED_PARSE, S.FAILED_CHUNKING, S.FAILED_EMBEDDING})

# status -> the statuses it may move to. Cancel is allowed from every non-terminal status.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.UPLOADED: frozenset({S.PARSE_QUEUED, S.FAILED_PARSE}),
    S.PARSE_QUEUED: frozenset({S.PARSED, S.FAILED_PARSE}),
    S.PARSED: frozenset({S.PARSE_VALIDATED, S.FAILED_PARSE, S.DUPLICATE}),
    S.PARSE_VALIDATED: frozenset({S.CHUNKING, S.FAILED_CHUNKING}),
    S.CHUNKING: frozenset({S.CHUNKS_STORED, S.FAILED_CHUNKING}),
    S.CHUNKS_STORED: frozenset({S.EMBEDDING_QUEUED, S.FAILED_EMBEDDING}),
    S.EMBEDDING_QUEUED: frozenset({S.EMBEDDING_IN_PROGRESS, S.FAILED_EMBEDDING}),
    S.EMBEDDING_IN_PROGRESS: frozenset({S.EMBEDDINGS_STORED, S.FAILED_EMBEDDING}),
    # back to embed: finalize found passages without a vector (written after the embed stage ran)
    S.EMBEDDINGS_STORED: frozenset({S.COMPLETE, S.FAILED_EMBEDDING, S.EMBEDDING_QUEUED}),
}
for _status in list(TRANSITIONS):
    TRANSITIONS[_status] = TRANSITIONS[_status] | {S.CANCELLED}
for _status in TERMINAL:
    TRANSITIONS[_status] = frozenset()


class InvalidTransition(Exception):
    """A status change the table does not allow."""


def can_transition(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, new: str) -> None:
    if not can_transition(current, new):
        raise InvalidTransition(f"A job in status '{current}' cannot move to '{new}'.")


@dataclass(frozen=True)
class StageSpec:
    """Which statuses a stage starts from, shows while running, ends in, and fails to."""

    name: str
    entry: frozenset[str]  # a job in one of these statuses is due for this stage
    running: str | None  # status shown while the stage runs (None: stays in its entry status)
    done: str  # status after the stage succeeded
    failed: str
    next: str | None  # the stage enqueued after this one
    weight: int  # share of total progress, in percent


STAGES: dict[str, StageSpec] = {
    "parse": StageSpec("parse", frozenset({S.UPLOADED, S.PARSE_QUEUED}), S.PARSE_QUEUED, S.PARSED,
                       S.FAILED_PARSE, "validate", 40),
    "validate": StageSpec("validate", frozenset({S.PARSED}), None, S.PARSE_VALIDATED, S.FAILED_PARSE, "chunk", 5),
    "chunk": StageSpec("chunk", frozenset({S.PARSE_VALIDATED, S.CHUNKING}), S.CHUNKING, S.CHUNKS_STORED,
                       S.FAILED_CHUNKING, "embed", 15),
    "embed": StageSpec("embed", frozenset({S.CHUNKS_STORED, S.EMBEDDING_QUEUED, S.EMBEDDING_IN_PROGRESS}),
                       S.EMBEDDING_IN_PROGRESS, S.EMBEDDINGS_STORED, S.FAILED_EMBEDDING, "finalize", 35),
    "finalize": StageSpec("finalize", frozenset({S.EMBEDDINGS_STORED}), None, S.COMPLETE, S.FAILED_EMBEDDING, None, 5),
}
STAGE_ORDER = ["parse", "validate", "chunk", "embed", "finalize"]
# Status a job shows while waiting in the queue for a stage, when the vocabulary has one.
QUEUED_STATUS = {"embed": S.EMBEDDING_QUEUED}


def stage_for_status(status: str) -> str | None:
    """The stage a job in ``status`` is waiting for or running, None for terminal statuses."""
    for name in STAGE_ORDER:
        if status in STAGES[name].entry:
            return name
    return None


def path_to(current: str, target: str) -> list[str]:
    """Statuses to pass through, in order, to move from ``current`` to ``target`` (exclusive/inclusive)."""
    if current == target:
        return []
    order = [S.UPLOADED, S.PARSE_QUEUED, S.PARSED, S.PARSE_VALIDATED, S.CHUNKING, S.CHUNKS_STORED,
             S.EMBEDDING_QUEUED, S.EMBEDDING_IN_PROGRESS, S.EMBEDDINGS_STORED, S.COMPLETE]
    if target not in order or current not in order:
        check_transition(current, target)
        return [target]
    start, end = order.index(current), order.index(target)
    if end <= start:
        if can_transition(current, target):  # the one way back the table allows
            return [target]
        raise InvalidTransition(f"A job in status '{current}' cannot go back to '{target}'.")
    return order[start + 1:end + 1]
