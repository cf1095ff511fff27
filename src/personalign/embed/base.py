"""The :class:`Embedder` protocol: sentence embeddings for retrieval and preference features."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to L2-normalised ``float32`` vectors of a fixed dimension.

    ``model_id`` identifies the embedding model exactly (it keys the on-disk cache).
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return an array of shape ``(len(texts), dim)``, rows L2-normalised."""
        ...
