""":class:`HashingEmbedder`: a deterministic, dependency-light embedder for tests and simulations.

A text becomes a bag of features: its lower-cased words (weight 1), adjacent word pairs (weight
0.5) and the character 3-grams of each word padded with ``<``/``>`` (weight 0.25). Each feature is
hashed (BLAKE2b, so the same on every machine and run, unlike Python's salted ``hash``) to a
dimension and a sign; the summed vector is L2-normalised. Texts sharing words or word pieces get
positive cosine similarity; unrelated texts are near-orthogonal. An empty text maps to a fixed
unit vector.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")
_EMPTY = "\x00empty"


class HashingEmbedder:
    """Hashed word / word-pair / character-trigram features, L2-normalised (see module docstring)."""

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError(f"dim must be >= 8, got {dim}")
        self._dim = dim

    @property
    def model_id(self) -> str:
        return f"hashing-v1-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _features(self, text: str) -> list[tuple[str, float]]:
        words = _WORD.findall(text.lower())
        if not words:
            return [(_EMPTY, 1.0)]
        feats: list[tuple[str, float]] = [("w:" + w, 1.0) for w in words]
        feats += [(f"b:{a} {b}", 0.5) for a, b in itertools.pairwise(words)]
        for w in words:
            padded = f"<{w}>"
            feats += [("c:" + padded[i : i + 3], 0.25) for i in range(len(padded) - 2)]
        return feats

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised."""
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{row}] is {type(text).__name__}, expected str")
            for feat, weight in self._features(text):
                h = int.from_bytes(hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest(), "big")
                out[row, h % self._dim] += weight if (h >> 63) & 1 else -weight
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:  # features cancelled out exactly: fall back to the empty-text vector
                h = int.from_bytes(hashlib.blake2b(_EMPTY.encode(), digest_size=8).digest(), "big")
                out[row, h % self._dim] = 1.0
            else:
                out[row] /= norm
        return out
