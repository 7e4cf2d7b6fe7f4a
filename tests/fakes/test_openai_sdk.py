"""The official openai SDK against the OpenAI fake over real HTTP: formats, limits, errors, retries."""
from __future__ import annotations

import base64
import json

import numpy as np
import openai
import pytest

pytestmark = pytest.mark.django_db(transaction=True)

MODEL = "text-embedding-3-small"


def test_float_and_base64_answers_carry_the_same_unit_vectors(openai_client):
    # given
    texts = ["Prior authorization is required for MRI scans.", "The deductible is $3,500 per person."]
    # when
    as_floats = openai_client.embeddings.create(input=texts, model=MODEL, encoding_format="float")
    as_base64 = openai_client.embeddings.create(input=texts, model=MODEL)  # the SDK asks for base64 by default
    # then
    assert as_floats.object == "list" and as_floats.model == MODEL
    assert [d.index for d in as_floats.data] == [0, 1] and all(d.object == "embedding" for d in as_floats.data)
    for a, b in zip(as_floats.data, as_base64.data):
        assert len(a.embedding) == len(b.embedding) == 1536
        assert np.allclose(a.embedding, b.embedding, atol=1e-7)
        assert np.linalg.norm(a.embedding) == pytest.approx(1.0, abs=1e-5)
    assert as_floats.usage.prompt_tokens == as_floats.usage.total_tokens > 0


def test_raw_base64_is_little_endian_float32(openai_client):
    raw = openai_client.embeddings.with_raw_response.create(input="coinsurance", model=MODEL, dimensions=8,
                                                           encoding_format="base64")
    encoded = json.loads(raw.text)["data"][0]["embedding"]
    vector = np.frombuffer(base64.b64decode(encoded), dtype="<f4")
    assert vector.shape == (8,) and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    assert raw.headers["x-ratelimit-limit-requests"] and raw.headers["x-request-id"].startswith("req_")


def _vector(embedding) -> np.ndarray:
    """An SDK embedding: a list of floats, or the base64 string the SDK hands back when base64 was asked for."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding), dtype="<f4")
    return np.asarray(embedding)


@pytest.mark.parametrize("encoding_format", ["float", "base64", openai.omit])
def test_dimensions_shorten_the_vectors(openai_client, encoding_format):
    response = openai_client.embeddings.create(input=["copay", "coinsurance"], model=MODEL, dimensions=256,
                                               encoding_format=encoding_format)
    vectors = [_vector(d.embedding) for d in response.data]
    assert [len(v) for v in vectors] == [256, 256]
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, abs=1e-5)


def test_same_text_same_vector_and_shared_words_are_closer(openai_client):
    texts = ["emergency room visit copay", "emergency room visit copay", "copay for an emergency room visit",
             "premium grace period three months"]
    vectors = np.array([d.embedding for d in openai_client.embeddings.create(input=texts, model=MODEL).data])
    assert np.array_equal(vectors[0], vectors[1])
    assert vectors[0] @ vectors[2] > 0.5 > vectors[0] @ vectors[3]


def test_token_arrays_are_accepted_and_counted(openai_client):
    one = openai_client.embeddings.create(input=[101, 2009, 318], model=MODEL, encoding_format="float")
    many = openai_client.embeddings.create(input=[[101, 2009], [318, 257, 1332]], model=MODEL)
    assert len(one.data) == 1 and one.usage.prompt_tokens == 3
    assert len(many.data) == 2 and many.usage.prompt_tokens == 5
    assert not np.allclose(many.data[0].embedding, many.data[1].embedding)


def test_models_are_listed_and_retrieved(openai_client):
    ids = {model.id for model in openai_client.models.list()}
    assert {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"} <= ids
    assert openai_client.models.retrieve(MODEL).owned_by == "system"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("text-embedding-9-huge")


@pytest.mark.parametrize("payload, code", [
    pytest.param({"input": ["a"] * 2049}, None, id="more-than-2048-inputs"),
    pytest.param({"input": "word " * 8193}, None, id="one-input-over-8192-tokens"),
    pytest.param({"input": [[7] * 8000] * 38}, "max_tokens_per_request", id="over-300k-tokens-in-a-request"),
    pytest.param({"input": ["fine", ""]}, None, id="an-empty-string"),
    pytest.param({"input": []}, None, id="no-input"),
    pytest.param({"input": "x", "dimensions": 4096}, None, id="dimensions-beyond-the-model"),
    pytest.param({"input": "x", "dimensions": 1536, "model": "text-embedding-ada-002"}, None,
                 id="any-dimensions-for-ada-002"),
])
def test_limits_raise_bad_request_error(openai_client, payload, code):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.embeddings.create(**{"model": MODEL, **payload})
    error = caught.value
    assert error.status_code == 400 and error.type == "invalid_request_error"
    assert error.code == code and error.param in ("input", "dimensions") and error.message


def test_unknown_model_is_not_found(openai_client):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.embeddings.create(input="x", model="text-embedding-4")
    assert caught.value.code == "model_not_found"


def test_wrong_key_raises_authentication_error(providers, settings):
    with openai.OpenAI(api_key="sk-wrong", base_url=settings.OPENAI_BASE_URL, max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError) as caught:
        client.embeddings.create(input="x", model=MODEL)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


def test_rate_limit_raises_rate_limit_error_with_retry_headers(openai_client, faults):
    faults("openai", rate_limit_rate=1.0, retry_after_seconds=7)
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.embeddings.create(input="x", model=MODEL)
    error = caught.value
    assert error.status_code == 429 and error.code == "rate_limit_exceeded"
    headers = error.response.headers
    assert headers["retry-after"] == "7" and headers["retry-after-ms"] == "7000"
    assert headers["x-ratelimit-remaining-requests"] == "0" and headers["x-ratelimit-reset-requests"] == "7s"
    assert headers["x-ratelimit-limit-tokens"] and headers["x-ratelimit-reset-tokens"] == "7s"


@pytest.mark.parametrize("knobs, error_class", [
    ({"error_rate": 1.0}, openai.InternalServerError),
    ({"timeout_rate": 1.0, "hang_seconds": 1.5}, openai.APITimeoutError),
])
def test_server_faults_raise_the_sdk_error_class(providers, settings, faults, knobs, error_class):
    faults("openai", **knobs)
    with openai.OpenAI(api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, max_retries=0,
                       timeout=0.4) as client, pytest.raises(error_class):
        client.embeddings.create(input="x", model=MODEL)


def test_sdk_retry_waits_the_retry_after_the_fake_sends(providers, settings, faults, received):
    # given a fake that answers every request 429 with Retry-After: 1 s
    faults("openai", rate_limit_rate=1.0, retry_after_seconds=1.0)
    # when
    with openai.OpenAI(api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, max_retries=2) as client, \
            pytest.raises(openai.RateLimitError):
        client.embeddings.create(input="x", model=MODEL)
    # then the SDK tried three times, each retry at least Retry-After later (its own backoff would be ≤ 0.5 s, then ≤ 1 s)
    requests = received("openai")
    assert [r.status for r in requests] == [429, 429, 429]
    gaps = [(b.created_at - a.created_at).total_seconds() for a, b in zip(requests, requests[1:])]
    assert min(gaps) >= 1.0


def test_sdk_retries_through_rate_limits_to_an_answer(providers, settings, control, received):
    # given a seeded fake that rate-limits about half of the requests, asking for a short wait
    assert control("POST", "openai", json={"seed": 3, "rate_limit_rate": 0.5, "retry_after_seconds": 0.05}).is_success
    # when
    with openai.OpenAI(api_key=settings.OPENAI_API_KEY, base_url=settings.OPENAI_BASE_URL, max_retries=8) as client:
        answers = [client.embeddings.create(input=f"question {i}", model=MODEL) for i in range(8)]
    # then every call got its vector, and the fake saw one extra request per 429
    statuses = [r.status for r in received("openai")]
    assert len(answers) == 8 and statuses.count(200) == 8
    assert statuses.count(429) >= 1 and len(statuses) == 8 + statuses.count(429)
