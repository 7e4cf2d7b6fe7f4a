"""The one client of the embeddings provider, through the official ``openai`` SDK.

SDK exceptions become TransientError/PermanentError here. The SDK's own retry (which honours
Retry-After) absorbs short blips; what it gives up on goes back to the stage runner's backoff.
"""
from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import openai
from django.conf import settings

from ingestion.errors import PermanentError, TransientError
from ingestion.providers.pool import ClientPool


@dataclass
class EmbeddingBatchResult:
    vectors: list[np.ndarray | None]  # float32, one per input, in order (None: its batch failed)
    tokens: int
    calls: int


_pool = ClientPool()

# Models whose vectors have one size that cannot be asked for (the API refuses the `dimensions` field).
FIXED_SIZE_MODELS = {"text-embedding-ada-002"}


def make_client() -> openai.OpenAI:
    """This process's client for the configured provider, kept between documents (ingestion.providers.pool)."""
    key = (settings.OPENAI_API_KEY, settings.OPENAI_BASE_URL, settings.OPENAI_TIMEOUT_SECONDS,
           settings.OPENAI_SDK_MAX_RETRIES)
    return _pool.get(key, lambda: openai.OpenAI(api_key=key[0], base_url=key[1], timeout=key[2], max_retries=key[3]))


def _convert(exc: Exception) -> Exception:
    if isinstance(exc, openai.RateLimitError) and getattr(exc, "code", None) == "insufficient_quota":
        # also a 429, but about the account, not the pace: no retry can fix it
        return PermanentError("EMBED_QUOTA_EXCEEDED", "The embedding provider's account is out of quota or credit "
                              "(OpenAI insufficient_quota). Add credit or raise the usage limit, then retry the "
                              "document.")
    if isinstance(exc, openai.RateLimitError):
        retry_after = None
        try:
            retry_after = float(exc.response.headers.get("retry-after"))
        except (TypeError, ValueError):
            pass
        return TransientError("EMBED_RATE_LIMITED", "The embedding provider is rate-limiting us; we will retry "
                              "after its delay.", retry_after=retry_after)
    if isinstance(exc, openai.APITimeoutError):
        return TransientError("EMBED_PROVIDER_TIMEOUT", "The embedding provider did not answer in time; we will retry.")
    if isinstance(exc, openai.APIConnectionError):
        return TransientError("EMBED_PROVIDER_UNAVAILABLE", "The embedding provider could not be reached; we will retry.")
    if isinstance(exc, openai.InternalServerError):
        return TransientError("EMBED_PROVIDER_ERROR", f"The embedding provider failed (HTTP {exc.status_code}); "
                              "we will retry.")
    if isinstance(exc, openai.AuthenticationError):
        return PermanentError("EMBED_PROVIDER_AUTH", "The embedding provider refused our API key. Check "
                              "OPENAI_API_KEY, then retry the document.")
    if isinstance(exc, openai.APIStatusError):
        return PermanentError("EMBED_PROVIDER_REJECTED", f"The embedding provider rejected the request "
                              f"(HTTP {exc.status_code}): {exc.message}")
    return TransientError("EMBED_PROVIDER_ERROR", f"Embedding failed ({exc.__class__.__name__}); we will retry.")


def _as_array(embedding) -> np.ndarray:
    """One vector from the answer: base64 little-endian float32 (as requested) or a JSON list of floats."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
    return np.asarray(embedding, dtype=np.float32)


def _embed_batch(client: openai.OpenAI, texts: list[str], model: str, dimensions: int) -> tuple[list[np.ndarray], int]:
    # base64 is what the SDK asks for by default too; asking for it by name keeps the provider's float32
    # bytes as they are, instead of the SDK turning every vector into a list of Python floats.
    try:
        # text-embedding-ada-002 has one size and answers 400 to any `dimensions`, even its own
        sized = {"dimensions": dimensions} if model not in FIXED_SIZE_MODELS else {}
        response = client.embeddings.create(input=texts, model=model, encoding_format="base64", **sized)
    except openai.OpenAIError as exc:
        raise _convert(exc) from exc
    if len(response.data) != len(texts):
        raise TransientError("EMBED_PROVIDER_MALFORMED", f"The embedding provider returned {len(response.data)} "
                             f"vectors for {len(texts)} inputs; we will retry.")
    ordered = sorted(response.data, key=lambda item: item.index)
    try:
        vectors = [_as_array(item.embedding) for item in ordered]
    except (ValueError, TypeError) as exc:  # binascii.Error (broken base64) is a ValueError
        raise TransientError("EMBED_PROVIDER_MALFORMED", f"The embedding provider's vectors could not be read "
                             f"({exc}); we will retry.") from exc
    if any(v.shape != (dimensions,) for v in vectors):
        raise TransientError("EMBED_PROVIDER_MALFORMED", "The embedding provider returned vectors of the wrong size.")
    return vectors, response.usage.total_tokens if response.usage else 0


def batches(texts: list[str], token_counts: list[int], *, max_inputs: int, max_tokens: int) -> list[list[int]]:
    """Indexes of ``texts`` grouped into requests within the provider's input and token limits."""
    groups: list[list[int]] = []
    current: list[int] = []
    current_tokens = 0
    for index, tokens in enumerate(token_counts):
        if current and (len(current) >= max_inputs or current_tokens + tokens > max_tokens):
            groups.append(current)
            current, current_tokens = [], 0
        current.append(index)
        current_tokens += tokens
    if current:
        groups.append(current)
    return groups


def embeddings_for_texts(texts: list[str], token_counts: list[int], *, model: str | None = None,
                         dimensions: int | None = None) -> EmbeddingBatchResult:
    """Vectors for ``texts`` in order, sent in limit-sized batches, several at once."""
    model = model or settings.EMBEDDING_MODEL
    dimensions = dimensions or settings.EMBEDDING_DIMENSIONS
    groups = batches(texts, token_counts, max_inputs=settings.EMBEDDING_BATCH_INPUTS,
                     max_tokens=settings.EMBEDDING_BATCH_TOKENS)
    vectors: list[np.ndarray | None] = [None] * len(texts)
    tokens, sent, failure = 0, 0, None
    client = make_client()
    workers = max(1, min(settings.EMBEDDING_CONCURRENCY, len(groups)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [(group, pool.submit(_embed_batch, client, [texts[i] for i in group], model, dimensions))
                   for group in groups]
        for group, future in futures:
            if future.cancelled():
                continue
            sent += 1
            try:
                batch_vectors, batch_tokens = future.result()
            except (TransientError, PermanentError) as error:
                if failure is None:
                    failure = error
                    for _, later in futures:  # batches not sent yet are not sent (nor paid for)
                        later.cancel()
                continue
            tokens += batch_tokens
            for index, vector in zip(group, batch_vectors):
                vectors[index] = vector
    if failure is not None:
        # The batches that came back were paid for: the caller keeps them (``partial``), so an attempt
        # after this one pays only for the rest.
        failure.partial = EmbeddingBatchResult(vectors=vectors, tokens=tokens, calls=sent)
        raise failure
    return EmbeddingBatchResult(vectors=vectors, tokens=tokens, calls=sent)
