"""Deterministic, meaningful fake embeddings: feature hashing of words and word pairs.

Texts that share words share hashed coordinates, so their cosine similarity is high and a search
over fake vectors returns chunks that really contain the query's words. A feature repeated in a
text counts by the square root of its count, so a long chunk repeating a common word does not
outrank the chunk that holds all of the query's words.
"""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from functools import lru_cache

import numpy as np

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
STOPWORDS = frozenset(
    "a an and are as at be by for from has have i if in is it its my of on or our so that the their this "
    "to was we what when where which who will with you your do does how can me".split()
)


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


# A word pair counts half a word: it rewards phrases without drowning single-word matches.
PAIR_WEIGHT = 0.5


def features(text: str) -> list[tuple[str, float]]:
    """(feature, weight) of a text: each distinct word and word pair, weighted by sqrt(count)."""
    words = [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    counts = Counter(words)
    pairs = Counter(f"{a} {b}" for a, b in zip(words, words[1:]))
    return ([(word, math.sqrt(n)) for word, n in counts.items()]
            + [(pair, PAIR_WEIGHT * math.sqrt(n)) for pair, n in pairs.items()])


@lru_cache(maxsize=200_000)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimensions, (1.0 if (value >> 63) & 1 else -1.0)


def embed(text: str, dimensions: int) -> np.ndarray:
    """Unit-length float32 vector of ``dimensions`` for ``text``; same text, same vector."""
    vector = np.zeros(dimensions, dtype=np.float32)
    weighted = features(text)
    if weighted:
        slots = [_slot(feature, dimensions) for feature, _ in weighted]
        # in feature order, in float32: the same sums as adding one feature at a time
        np.add.at(vector, np.fromiter((index for index, _ in slots), dtype=np.intp, count=len(slots)),
                  np.fromiter((sign * weight for (_, sign), (_, weight) in zip(slots, weighted)), dtype=np.float32,
                              count=len(slots)))
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        # Text without words (punctuation only) still gets a valid, deterministic unit vector.
        index, sign = _slot(text or " ", dimensions)
        vector[index] = sign
        return vector
    return vector / norm
