"""A stand-in for the OpenAI embeddings API, wire-compatible with the official ``openai`` SDK."""
from __future__ import annotations

import base64
import json
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

from fakes import embeddings, faults as fault_knobs
from fakes.views_common import bearer_token, fake_endpoint, read_json
from ingestion.chunking import estimate_tokens

# The real service's limits (per request): inputs, tokens per input, tokens in total.
MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def openai_error(status: int, message: str, code: str | None, type_: str, param: str | None = None) -> JsonResponse:
    return JsonResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status=status)


def _denied(request: HttpRequest) -> JsonResponse | None:
    if bearer_token(request) != settings.FAKES_OPENAI_API_KEY:
        return openai_error(401, "Incorrect API key provided. You can find your API key at "
                            "https://platform.openai.com/account/api-keys.", "invalid_api_key", "invalid_request_error")
    return None


def _is_token(item) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)


def _inputs(raw) -> list[tuple[str, int]] | None:
    """(text, tokens) of each input. The SDK sends a string, a list of strings, a token array, or a
    list of token arrays; a token array is embedded as the words ``t<id>`` and counts its length."""
    if isinstance(raw, str):
        return [(raw, estimate_tokens(raw))]
    if isinstance(raw, list) and raw:
        if all(_is_token(item) for item in raw):
            return [(" ".join(f"t{item}" for item in raw), len(raw))]
        if all(isinstance(item, str) for item in raw):
            return [(item, estimate_tokens(item)) for item in raw]
        if all(isinstance(item, list) and all(_is_token(t) for t in item) for item in raw):
            return [(" ".join(f"t{t}" for t in item), len(item)) for item in raw]
    return None


def _truncated(response: HttpResponse) -> HttpResponse:
    """A malformed answer, as a cut-off stream would give: one vector fewer than inputs, or, for a
    single input, its vector cut short (base64 that no longer decodes, or half the numbers)."""
    body = json.loads(response.content)
    if len(body["data"]) > 1:
        body["data"] = body["data"][:-1]
    else:
        vector = body["data"][0]["embedding"]
        body["data"][0]["embedding"] = vector[:len(vector) // 2 - 1] if isinstance(vector, str) else vector[:len(vector) // 2]
    response.content = json.dumps(body).encode()
    return response


openai_endpoint = fake_endpoint("openai", error_body=openai_error, denied=_denied, malform=_truncated)


@require_POST
@openai_endpoint
def create_embeddings(request: HttpRequest, faults: fault_knobs.Faults, draw: fault_knobs.Draw) -> JsonResponse:
    body = read_json(request)
    if not isinstance(body, dict):
        return openai_error(400, "We could not parse the JSON body of your request.", None, "invalid_request_error")
    model = body.get("model")
    if model not in MODELS:
        return openai_error(404, f"The model `{model}` does not exist or you do not have access to it.",
                            "model_not_found", "invalid_request_error", "model")
    inputs = _inputs(body.get("input"))
    if inputs is None:
        return openai_error(400, "'input' must be a string, an array of strings, or token arrays, and not empty.",
                            None, "invalid_request_error", "input")
    texts = [text for text, _ in inputs]
    if len(texts) > MAX_INPUTS:
        return openai_error(400, f"'input' : maximum batch size is {MAX_INPUTS}.", None, "invalid_request_error", "input")
    if any(text == "" for text in texts):
        return openai_error(400, "'input' cannot contain an empty string.", None, "invalid_request_error", "input")
    if model == "text-embedding-ada-002" and "dimensions" in body:  # the real API refuses any value, even 1536
        return openai_error(400, "This model does not support specifying dimensions.", None,
                            "invalid_request_error", "dimensions")
    dimensions = body.get("dimensions", MODELS[model])
    if not isinstance(dimensions, int) or not 1 <= dimensions <= MODELS[model]:
        return openai_error(400, f"This model does not support specifying dimensions={dimensions}.",
                            None, "invalid_request_error", "dimensions")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return openai_error(400, "'encoding_format' must be 'float' or 'base64'.", None, "invalid_request_error",
                            "encoding_format")
    token_counts = [tokens for _, tokens in inputs]
    for index, count in enumerate(token_counts):
        if count > MAX_INPUT_TOKENS:
            return openai_error(400, f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you "
                                f"requested {count} tokens in input[{index}].", None, "invalid_request_error", "input")
    total = sum(token_counts)
    if total > MAX_REQUEST_TOKENS:
        return openai_error(400, f"Requested {total} tokens, max {MAX_REQUEST_TOKENS} tokens per request.",
                            "max_tokens_per_request", "invalid_request_error", "input")
    data = []
    for index, text in enumerate(texts):
        vector = embeddings.embed(text, dimensions)
        value = base64.b64encode(vector.astype("<f4").tobytes()).decode() if encoding == "base64" else vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": value})
    response = JsonResponse({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": total, "total_tokens": total}})
    response["x-ratelimit-limit-requests"] = "3000"
    response["x-ratelimit-remaining-requests"] = "2999"
    response["x-ratelimit-reset-requests"] = "20ms"
    response["x-ratelimit-limit-tokens"] = "1000000"
    response["x-ratelimit-remaining-tokens"] = str(max(0, 1_000_000 - total))
    response["x-ratelimit-reset-tokens"] = "0s"
    response["openai-model"] = model
    response["openai-processing-ms"] = "1"
    response["x-request-id"] = f"req_{time.time_ns():x}"
    return response


def _model(name: str) -> dict:
    return {"id": name, "object": "model", "created": 1705953180, "owned_by": "system"}


@require_GET
@openai_endpoint
def list_models(request: HttpRequest, faults: fault_knobs.Faults, draw: fault_knobs.Draw) -> JsonResponse:
    return JsonResponse({"object": "list", "data": [_model(name) for name in MODELS]})


@require_GET
@openai_endpoint
def retrieve_model(request: HttpRequest, faults: fault_knobs.Faults, draw: fault_knobs.Draw,
                   model: str) -> JsonResponse:
    if model not in MODELS:
        return openai_error(404, f"The model '{model}' does not exist", "model_not_found", "invalid_request_error",
                            "model")
    return JsonResponse(_model(model))
