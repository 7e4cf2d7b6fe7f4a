"""The provider clients turn every vendor failure into TransientError or PermanentError with a clear code.

Failures the fakes produce on demand are tested through them (tests/fakes/); here are the answers no
well-behaved service gives: a closed port, a dropped connection, a body without the fields the
client needs, an unreadable Retry-After. They come from a small real HTTP server in the test.
"""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingestion.errors import PermanentError, TransientError
from ingestion.providers.llamaparse import LlamaParseClient
from ingestion.providers.openai_embeddings import batches, embeddings_for_texts
from tests.clusters import free_port


class Misbehaving(BaseHTTPRequestHandler):
    """Answers every request with ``server.answer``: (status, headers, body) or "drop" to cut the connection."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        answer = self.server.answer
        if answer == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        status, headers, body = answer
        payload = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.answer = (200, {}, {})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def _llamaparse_error(base_url: str, call, settings) -> Exception:
    settings.LLAMAPARSE_MAX_RETRIES = 0
    with LlamaParseClient(base_url=base_url, timeout=5) as client, pytest.raises((TransientError, PermanentError)) as error:
        call(client)
    return error.value


def test_llamaparse_failures_become_our_errors(stub, settings):
    upload = lambda c: c.upload(data=b"%PDF-1.4", filename="a.pdf")  # noqa: E731
    assert _llamaparse_error(f"http://127.0.0.1:{free_port()}", upload, settings).code == "PARSE_PROVIDER_UNREACHABLE"
    stub.answer = "drop"
    assert _llamaparse_error(stub.url, lambda c: c.status("j1"), settings).code == "PARSE_PROVIDER_UNAVAILABLE"
    stub.answer = (429, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, {"detail": "slow down"})
    error = _llamaparse_error(stub.url, lambda c: c.status("j1"), settings)
    assert error.code == "PARSE_RATE_LIMITED" and error.retry_after is None
    stub.answer = (403, {}, {"detail": "Invalid API key"})
    assert _llamaparse_error(stub.url, upload, settings).code == "PARSE_PROVIDER_AUTH"
    stub.answer = (422, {}, {"detail": "Unsupported option"})
    error = _llamaparse_error(stub.url, upload, settings)
    assert error.code == "PARSE_PROVIDER_REJECTED" and "Unsupported option" in error.message
    stub.answer = (200, {}, {"status": "PENDING"})
    assert _llamaparse_error(stub.url, upload, settings).code == "PARSE_PROVIDER_MALFORMED"
    stub.answer = (200, {}, {"pages": "none"})
    assert _llamaparse_error(stub.url, lambda c: c.pages("j1"), settings).code == "PARSE_PROVIDER_MALFORMED"


def test_llamaparse_reads_are_retried_inside_the_client(stub, settings):
    settings.LLAMAPARSE_MAX_RETRIES = 2
    stub.answer = (503, {"Retry-After": "0"}, {"detail": "busy"})
    with LlamaParseClient(base_url=stub.url, timeout=5) as client:
        with pytest.raises(TransientError):
            client.status("j1")
        assert client.calls == 3 and client.retries == 2
        # an upload the parser may have taken is not sent again
        with pytest.raises(TransientError):
            client.upload(data=b"%PDF-1.4", filename="a.pdf")
        assert client.calls == 4


def _openai_error(settings, base_url: str, texts=("a passage",)) -> Exception:
    settings.OPENAI_BASE_URL, settings.OPENAI_SDK_MAX_RETRIES = base_url, 0
    with pytest.raises((TransientError, PermanentError)) as error:
        embeddings_for_texts(list(texts), [3] * len(texts), model="text-embedding-3-small", dimensions=8)
    return error.value


def test_embedding_failures_become_our_errors(stub, settings, providers, faults):
    assert _openai_error(settings, f"http://127.0.0.1:{free_port()}").code == "EMBED_PROVIDER_UNAVAILABLE"
    stub.answer = (429, {"retry-after": "soon"}, {"error": {"message": "slow down", "type": "requests",
                                                            "code": "rate_limit_exceeded", "param": None}})
    error = _openai_error(settings, stub.url)
    assert error.code == "EMBED_RATE_LIMITED" and error.retry_after is None
    stub.answer = (200, {}, {"object": "list", "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1},
                             "data": [{"object": "embedding", "index": 0, "embedding": [0.1] * 8}] * 2})
    assert _openai_error(settings, stub.url).code == "EMBED_PROVIDER_MALFORMED"  # 2 vectors for 1 input
    stub.answer = (200, {}, {"object": "list", "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1},
                             "data": [{"object": "embedding", "index": 0, "embedding": [0.1] * 3}]})
    assert _openai_error(settings, stub.url).code == "EMBED_PROVIDER_MALFORMED"  # wrong size
    fake = f"{providers.url}/fakes/openai/v1"
    assert _openai_error(settings, fake, texts=("",)).code == "EMBED_PROVIDER_REJECTED"  # 400: empty input
    settings.OPENAI_API_KEY = "sk-wrong"
    assert _openai_error(settings, fake).code == "EMBED_PROVIDER_AUTH"


def test_an_account_out_of_quota_is_a_permanent_error_not_a_rate_limit(settings, providers, faults):
    # the fake answers every request as OpenAI does once the account's credit is gone: 429 insufficient_quota
    faults("openai", quota_exhausted=1)
    error = _openai_error(settings, f"{providers.url}/fakes/openai/v1")
    assert isinstance(error, PermanentError) and error.code == "EMBED_QUOTA_EXCEEDED"
    assert "Add credit" in error.message


def test_ada_002_is_asked_without_a_size_which_it_refuses(settings, providers):
    settings.OPENAI_SDK_MAX_RETRIES = 0
    settings.OPENAI_BASE_URL = f"{providers.url}/fakes/openai/v1"
    result = embeddings_for_texts(["a deductible", "a copay"], [3, 3], model="text-embedding-ada-002",
                                  dimensions=1536)
    assert [vector.shape for vector in result.vectors] == [(1536,), (1536,)]


def test_a_provider_that_hangs_past_our_timeout_is_a_transient_error(settings, providers, faults):
    settings.OPENAI_TIMEOUT_SECONDS = 0.5
    faults("openai", timeout_rate=1.0, hang_seconds=2)
    assert _openai_error(settings, f"{providers.url}/fakes/openai/v1").code == "EMBED_PROVIDER_TIMEOUT"


def test_batches_respect_input_and_token_limits():
    assert batches(["a"] * 5, [1] * 5, max_inputs=2, max_tokens=100) == [[0, 1], [2, 3], [4]]
    assert batches(["a"] * 4, [60, 50, 10, 90], max_inputs=10, max_tokens=100) == [[0], [1, 2], [3]]
    assert batches([], [], max_inputs=2, max_tokens=10) == []
