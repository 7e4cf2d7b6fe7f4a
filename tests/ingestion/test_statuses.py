import pytest

from ingestion.statuses import (STAGES, TERMINAL, TRANSITIONS, InvalidTransition, Status, can_transition,
                                check_transition, path_to, stage_for_status)


def test_happy_path_statuses_chain_to_complete():
    # given the public vocabulary's happy path
    chain = [Status.UPLOADED, Status.PARSE_QUEUED, Status.PARSED, Status.PARSE_VALIDATED, Status.CHUNKING,
             Status.CHUNKS_STORED, Status.EMBEDDING_QUEUED, Status.EMBEDDING_IN_PROGRESS,
             Status.EMBEDDINGS_STORED, Status.COMPLETE]
    # then each step is allowed
    for current, new in zip(chain, chain[1:]):
        assert can_transition(current, new), (current, new)


def test_terminal_statuses_allow_no_transition():
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()
        with pytest.raises(InvalidTransition):
            check_transition(status, Status.UPLOADED)


def test_every_non_terminal_status_can_be_cancelled():
    for status in Status:
        if status not in TERMINAL:
            assert can_transition(status, Status.CANCELLED)


def test_skipping_backwards_is_refused():
    with pytest.raises(InvalidTransition):
        path_to(Status.CHUNKS_STORED, Status.PARSED)


def test_path_to_lists_intermediate_statuses():
    assert path_to(Status.CHUNKING, Status.EMBEDDING_QUEUED) == [Status.CHUNKS_STORED, Status.EMBEDDING_QUEUED]
    assert path_to(Status.PARSED, Status.DUPLICATE) == [Status.DUPLICATE]
    assert path_to(Status.PARSED, Status.PARSED) == []


def test_each_status_maps_to_the_stage_that_handles_it():
    assert stage_for_status(Status.UPLOADED) == "parse"
    assert stage_for_status(Status.PARSED) == "validate"
    assert stage_for_status(Status.EMBEDDING_QUEUED) == "embed"
    assert stage_for_status(Status.COMPLETE) is None


def test_stage_failure_statuses_are_failures_of_that_stage():
    assert STAGES["parse"].failed == Status.FAILED_PARSE
    assert STAGES["chunk"].failed == Status.FAILED_CHUNKING
    assert STAGES["embed"].failed == Status.FAILED_EMBEDDING
    assert sum(spec.weight for spec in STAGES.values()) == 100
