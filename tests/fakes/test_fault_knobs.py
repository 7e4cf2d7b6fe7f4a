"""Every fault knob of the fakes, as the project's own provider clients see it (over real HTTP)."""
from __future__ import annotations

import time

import pytest

from fakes.models import FakeParseJob, FakeRequest
from ingestion import services
from ingestion.errors import PermanentError, TransientError
from ingestion.models import Event
from ingestion.pipeline.runner import run_job_sync, run_stage
from ingestion.providers.llamaparse import LlamaParseClient, error_for_failed_job
from ingestion.providers.openai_embeddings import embeddings_for_texts
from ingestion.statuses import Status

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def parse_job(providers, pdf_bytes):
    """A finished parser job id, submitted before any fault is set."""
    with LlamaParseClient() as client:
        job_id = client.upload(data=pdf_bytes, filename="policy.pdf")
        assert client.status(job_id).status == "SUCCESS"
    return job_id


@pytest.fixture
def openai_settings(providers, settings):
    """The project's embeddings client without the SDK's own retries, so each fault shows at once."""
    settings.OPENAI_SDK_MAX_RETRIES = 0
    return settings


def _poll(job_id: str, *, timeout: float | None = None):
    with LlamaParseClient(timeout=timeout) as client:
        return client.status(job_id)


def _embed(text: str = "deductible"):
    return embeddings_for_texts([text], [1])


def _error_of(call) -> PermanentError | TransientError:
    with pytest.raises((TransientError, PermanentError)) as caught:
        call()
    return caught.value


def _outcome(call) -> str:
    try:
        call()
    except (TransientError, PermanentError) as error:
        return error.code
    return "ok"


# --- latency and jitter --------------------------------------------------------------------------

def test_fixed_latency_delays_every_request_by_the_same_amount(parse_job, faults, received):
    faults("llamaparse", latency_ms=40)
    for _ in range(3):
        assert _poll(parse_job).status == "SUCCESS"
    assert [r.delay_ms for r in received("llamaparse")[-3:]] == [40, 40, 40]


def test_jitter_adds_a_different_delay_within_its_range(parse_job, control, received):
    assert control("POST", "llamaparse", json={"latency_ms": 10, "jitter_ms": 50}).is_success
    for _ in range(6):
        assert _poll(parse_job).status == "SUCCESS"
    delays = [r.delay_ms for r in received("llamaparse")[-6:]]
    assert all(10 <= d <= 60 for d in delays) and len(set(delays)) > 1


@pytest.mark.parametrize("knobs", [{"latency_ms": 1200}, {"latency_ms": 700, "jitter_ms": 500}],
                         ids=["fixed", "jitter"])
def test_latency_past_the_client_timeout_is_a_transient_timeout(parse_job, openai_settings, faults, received, knobs):
    # given delays of at least 0.7 s against clients that wait 0.3 s
    faults("llamaparse", **knobs)
    faults("openai", **knobs)
    openai_settings.OPENAI_TIMEOUT_SECONDS = 0.3
    # when
    parse_error = _error_of(lambda: _poll(parse_job, timeout=0.3))
    embed_error = _error_of(_embed)
    # then
    assert (type(parse_error), parse_error.code) == (TransientError, "PARSE_PROVIDER_TIMEOUT")
    assert (type(embed_error), embed_error.code) == (TransientError, "EMBED_PROVIDER_TIMEOUT")
    low, high = knobs["latency_ms"], knobs["latency_ms"] + knobs.get("jitter_ms", 0)
    for service in ("llamaparse", "openai"):
        applied = received(service)[-1]
        assert low <= applied.delay_ms <= high and applied.outcome == "ok"


# --- errors, rate limits, hangs, broken bodies ------------------------------------------------------

def test_error_rate_answers_5xx_and_clients_see_transient_errors(parse_job, openai_settings, control, received):
    assert control("POST", "llamaparse", json={"error_rate": 1.0, "seed": 5}).is_success
    assert control("POST", "openai", json={"error_rate": 1.0}).is_success
    codes = {_error_of(lambda: _poll(parse_job)).code for _ in range(12)}
    embed_error = _error_of(_embed)
    assert codes == {"PARSE_PROVIDER_ERROR"}
    assert (type(embed_error), embed_error.code) == (TransientError, "EMBED_PROVIDER_ERROR")
    assert {r.status for r in received("llamaparse")[-12:]} == {500, 502, 503}
    assert received("openai")[-1].status in (500, 502, 503)


def test_rate_limit_is_transient_and_carries_retry_after(parse_job, openai_settings, faults):
    faults("llamaparse", rate_limit_rate=1.0, retry_after_seconds=7)
    faults("openai", rate_limit_rate=1.0, retry_after_seconds=7)
    parse_error, embed_error = _error_of(lambda: _poll(parse_job)), _error_of(_embed)
    assert (type(parse_error), parse_error.code, parse_error.retry_after) == (TransientError, "PARSE_RATE_LIMITED", 7)
    assert (type(embed_error), embed_error.code, embed_error.retry_after) == (TransientError, "EMBED_RATE_LIMITED", 7)


def test_a_hanging_request_is_a_transient_timeout(parse_job, openai_settings, faults, received):
    faults("llamaparse", timeout_rate=1.0, hang_seconds=1.5)
    faults("openai", timeout_rate=1.0, hang_seconds=1.5)
    openai_settings.OPENAI_TIMEOUT_SECONDS = 0.3
    assert _error_of(lambda: _poll(parse_job, timeout=0.3)).code == "PARSE_PROVIDER_TIMEOUT"
    assert _error_of(_embed).code == "EMBED_PROVIDER_TIMEOUT"
    assert received("llamaparse")[-1].outcome == received("openai")[-1].outcome == "timeout"


def test_malformed_answers_are_transient(parse_job, openai_settings, faults):
    faults("llamaparse", malformed_rate=1.0)
    faults("openai", malformed_rate=1.0)
    assert _error_of(lambda: _poll(parse_job)).code == "PARSE_PROVIDER_MALFORMED"
    assert _error_of(lambda: embeddings_for_texts(["a", "b"], [1, 1])).code == "EMBED_PROVIDER_MALFORMED"
    lone = _error_of(lambda: embeddings_for_texts(["a"], [1]))  # its one vector cut short
    assert (type(lone), lone.code) == (TransientError, "EMBED_PROVIDER_MALFORMED") and "could not be read" in lone.message


# --- parse jobs that end ERROR ------------------------------------------------------------------------

@pytest.mark.parametrize("knobs, error_type, code", [
    ({}, TransientError, "PARSE_JOB_FAILED"),
    ({"parse_error_code": "NO_DATA_FOUND_IN_FILE"}, PermanentError, "PARSE_NO_TEXT"),
    ({"parse_error_code": "PDF_IS_PROTECTED"}, PermanentError, "PARSE_ENCRYPTED_PDF"),
])
def test_parse_jobs_end_error_with_the_chosen_code(providers, pdf_bytes, faults, knobs, error_type, code):
    faults("llamaparse", parse_error_rate=1.0, **knobs)
    with LlamaParseClient() as client:
        status = client.status(client.upload(data=pdf_bytes, filename="policy.pdf"))
    assert status.status == "ERROR" and status.error_message
    error = error_for_failed_job(status)
    assert (type(error), error.code) == (error_type, code)


def test_a_job_ended_error_fails_the_document_once_with_its_code(providers, member, pdf_bytes, faults):
    faults("llamaparse", parse_error_rate=1.0, parse_error_code="PDF_IS_PROTECTED")
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    assert run_job_sync(job.id) == Status.FAILED_PARSE
    job.refresh_from_db()
    assert (job.last_error_code, job.last_error_retryable, job.attempts) == ("PARSE_ENCRYPTED_PDF", False, 1)


def test_a_job_the_parser_cancels_is_submitted_again_then_fails_with_its_own_code(providers, member, pdf_bytes,
                                                                                  faults, settings):
    # given a parser that cancels every job (LlamaParse's status CANCELED)
    settings.JOB_MAX_ATTEMPTS = 2
    faults("llamaparse", parse_cancel_rate=1.0)
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    # when / then: each attempt submits the file afresh, and the document fails instead of waiting for ever
    assert run_job_sync(job.id) == Status.FAILED_PARSE
    job.refresh_from_db()
    assert job.last_error_code == "PARSE_JOB_CANCELLED" and "Gave up after 2 attempts" in job.last_error_message
    assert list(FakeParseJob.objects.values_list("status", flat=True)) == ["CANCELED", "CANCELED"]
    # each submission had its own callback address: a late callback of the abandoned one finds no job
    assert len(set(FakeParseJob.objects.values_list("webhook_url", flat=True))) == 2


def test_a_parser_job_that_never_finishes_is_given_up_and_submitted_again(providers, member, pdf_bytes, faults,
                                                                          settings):
    # given parser jobs that stay PENDING longer than we wait for one
    settings.JOB_MAX_ATTEMPTS = 2
    settings.PARSE_MAX_WAIT_SECONDS = 0.5
    settings.PARSE_POLL_WINDOW_SECONDS, settings.PARSE_POLL_INTERVAL_SECONDS = 0.2, 0.05
    faults("llamaparse", parse_seconds=3)
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    # when
    assert run_job_sync(job.id) == Status.FAILED_PARSE
    # then each attempt waited, gave its parser job up and submitted a new one
    job.refresh_from_db()
    assert job.last_error_code == "PARSE_TIMEOUT" and "still PENDING" in job.last_error_message
    assert FakeParseJob.objects.count() == 2
    assert Event.objects.filter(job=job, type="parse_waiting").exists()  # parked between polls meanwhile
    assert Event.objects.filter(job=job, type="parse_submitted").count() == 2


# --- webhooks that never arrive or arrive twice ----------------------------------------------------------

def _parse_with_webhooks(member, pdf_bytes) -> tuple:
    job = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf").job
    assert run_stage(job.id, "parse") == Status.PARSED
    job.refresh_from_db()
    return job, FakeParseJob.objects.get(pk=job.parse_job_id)


def _wait_for_webhooks(fake_job: FakeParseJob) -> FakeRequest:
    """The fake's record of the job's webhooks, once it has sent (or dropped) all of them."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        record = FakeRequest.objects.filter(method="WEBHOOK", path=fake_job.webhook_url[:500]).first()
        if record is not None:
            return record
        time.sleep(0.05)
    raise AssertionError("the fake never finished the job's webhooks")


@pytest.mark.parametrize("knobs, arrivals", [({}, 1), ({"webhook_duplicate_rate": 1.0}, 2),
                                             ({"webhook_drop_rate": 1.0}, 0)], ids=["once", "twice", "never"])
def test_webhooks_arrive_as_the_knobs_say_and_parsing_finishes_once(providers, member, pdf_bytes, faults, knobs,
                                                                       arrivals):
    # given
    faults("llamaparse", **knobs)
    # when the parse stage runs (it polls; the webhook is only a wake-up)
    job, fake_job = _parse_with_webhooks(member, pdf_bytes)
    record = _wait_for_webhooks(fake_job)
    # then the fake called back as often as the knobs say, and the stage finished once
    fake_job.refresh_from_db()
    assert record.outcome == ("webhook_sent" if arrivals else "webhook_dropped")
    assert fake_job.webhook_deliveries == arrivals
    # a second copy is a repeat that changes nothing (or finds the parse already done)
    assert Event.objects.filter(job=job, type="webhook_received").count() <= min(arrivals, 1)
    assert Event.objects.filter(job=job, type="stage_finished", stage="parse").count() == 1


# --- the control endpoint ----------------------------------------------------------------------------------

def test_the_control_endpoint_wants_its_token(providers, control):
    import httpx

    url = f"{providers.url}/fakes/control/faults/openai/"
    assert httpx.get(url).status_code == 401
    assert httpx.post(url, json={"error_rate": 1}, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{providers.url}/fakes/control/requests/openai/").status_code == 401
    assert control("GET", "openai").json()["faults"]["error_rate"] == 0


def test_knobs_changed_at_run_time_reach_the_clients(parse_job, openai_settings, control):
    # given a healthy fake
    assert _poll(parse_job).status == "SUCCESS"
    # when an operator breaks it, then adds latency on top (PATCH keeps the rest)
    assert control("POST", "llamaparse", json={"error_rate": 1.0}).is_success
    broken = _error_of(lambda: _poll(parse_job))
    patched = control("PATCH", "llamaparse", json={"latency_ms": 5}).json()["faults"]
    # then the client saw the failure; resetting brings it back
    assert broken.code == "PARSE_PROVIDER_ERROR"
    assert (patched["error_rate"], patched["latency_ms"]) == (1.0, 5.0)
    assert control("DELETE", "llamaparse").json()["faults"]["error_rate"] == 0
    assert _poll(parse_job).status == "SUCCESS"


@pytest.mark.parametrize("body, message", [({"error_rte": 1}, "unknown fault knob"),
                                           ({"error_rate": 2}, "from 0 to 1"),
                                           ({"seed": "abc"}, "integer"),
                                           ([1, 2], "JSON object")])
def test_bad_knobs_are_refused_with_a_reason(control, body, message):
    response = control("POST", "openai", json=body)
    assert response.status_code == 400 and message in response.json()["error"]["message"]


def test_the_request_log_shows_what_each_request_met(parse_job, control, settings):
    settings.LLAMAPARSE_MAX_RETRIES = 0  # one request, not the client's quick retries
    control("POST", "llamaparse", json={"rate_limit_rate": 1.0})
    _outcome(lambda: _poll(parse_job))
    log = control("GET", "llamaparse", what="requests", params={"limit": 2}).json()["requests"]
    assert [(r["method"], r["status"], r["outcome"]) for r in log] == [("GET", 200, "ok"), ("GET", 429, "rate_limited")]


# --- a fixed seed repeats a faulty run -----------------------------------------------------------------------

def test_a_fixed_seed_repeats_the_same_faults(parse_job, openai_settings, control):
    knobs = {"seed": 42, "error_rate": 0.3, "rate_limit_rate": 0.2, "malformed_rate": 0.1}

    def run(seed_knobs: dict) -> list[str]:
        assert control("POST", "llamaparse", json=seed_knobs).is_success
        assert control("POST", "openai", json=seed_knobs).is_success
        return [_outcome(lambda: _poll(parse_job)) for _ in range(12)] + [_outcome(_embed) for _ in range(8)]

    first, second = run(knobs), run(knobs)
    other = run(knobs | {"seed": 43})
    assert first == second
    assert len(set(first)) >= 3 and first != other
