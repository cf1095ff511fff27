""":class:`CachedEmbedder`: an on-disk cache of embeddings in SQLite.

Key: ``sha256(model_id ‖ 0x00 ‖ text)``; value: the float32 vector as raw bytes (``numpy.tobytes``,
never pickle), in a :class:`~personalign.sqlite_store.SQLiteStore` (WAL, busy timeout: several
processes may share one file). Default file: ``personalign.paths.cache_dir() / "embeddings.sqlite"``.
Only texts not yet cached are embedded, in batches of ``batch_size``, and each batch is written as
soon as it is done, so an interrupted run keeps its finished work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from personalign.embed.base import Embedder
from personalign.paths import cache_dir
from personalign.sqlite_store import CacheCorruptedError, RebuildReport, SQLiteStore

__all__ = ["CacheCorruptedError", "CachedEmbedder", "default_cache_path", "embedding_key"]

CACHE_FORMAT = "personalign-embeddings/1"


def default_cache_path() -> Path:
    """``cache_dir() / "embeddings.sqlite"``."""
    return cache_dir() / "embeddings.sqlite"


def embedding_key(model_id: str, text: str) -> str:
    """The cache key of ``text`` embedded by ``model_id`` (hex sha256)."""
    return hashlib.sha256(model_id.encode("utf-8") + b"\x00" + text.encode("utf-8")).hexdigest()


def _progress(starts: range, total: int, step: int, show: bool, model_id: str) -> Iterator[int]:
    if not show:
        yield from starts
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"embedding with {model_id}", total=total)
        for i in starts:
            yield i
            bar.advance(task, min(step, total - i))


class CachedEmbedder:
    """Wraps an :class:`Embedder` with a persistent cache (see module docstring).

    ``hits`` and ``misses`` count texts answered from the cache and texts embedded (a text repeated
    within one call counts once). ``progress=True`` shows a rich progress bar while embedding more
    than one batch.
    """

    def __init__(
        self, inner: Embedder, path: str | Path | None = None, batch_size: int = 256, progress: bool = False
    ) -> None:
        self.inner = inner
        self.progress = progress
        self.path = Path(path) if path is not None else default_cache_path()
        self.batch_size = batch_size
        self.hits = 0
        self.misses = 0
        self._store = SQLiteStore(
            self.path,
            CACHE_FORMAT,
            what="embedding cache",
            rebuild_call="personalign.embed.cache.CachedEmbedder.rebuild",
        )

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dim)`` float32, rows L2-normalised; cached rows are bit-identical."""
        texts = list(texts)
        model_id = self.inner.model_id
        keys = [embedding_key(model_id, t) for t in texts]
        stored = self._store.get_many(keys)
        vectors: dict[str, np.ndarray] = {}
        dim = None
        for key, blob in stored.items():
            if not isinstance(blob, bytes) or len(blob) % 4:
                raise self._store.corrupted(f"entry {key[:12]}… is not float32 bytes")
            vec = np.frombuffer(blob, dtype=np.float32)
            if dim is None:
                dim = vec.shape[0]
            if vec.shape[0] != dim:
                raise self._store.corrupted(f"entry {key[:12]}… has the wrong length")
            vectors[key] = vec
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in vectors and key not in todo:
                todo[key] = text
        items = list(todo.items())
        starts = range(0, len(items), self.batch_size)
        for i in _progress(starts, len(items), self.batch_size, self.progress and len(starts) > 1, model_id):
            chunk = items[i : i + self.batch_size]
            embedded = np.asarray(self.inner.encode([t for _, t in chunk]), dtype=np.float32)
            if embedded.shape[0] != len(chunk):
                raise RuntimeError(f"{model_id} returned {embedded.shape[0]} vectors for {len(chunk)} texts")
            self._store.put_many((k, embedded[j].tobytes()) for j, (k, _) in enumerate(chunk))
            vectors.update((k, embedded[j].copy()) for j, (k, _) in enumerate(chunk))
        self.misses += len(todo)
        self.hits += len(set(keys)) - len(todo)
        if not texts:
            return np.zeros((0, self.inner.dim), dtype=np.float32)
        return np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)

    def n_entries(self) -> int:
        """Number of vectors in the cache file (all models)."""
        return len(self._store)

    def close(self) -> None:
        self._store.close()

    @staticmethod
    def rebuild(path: str | Path | None = None) -> RebuildReport:
        """Rebuild a damaged embedding cache file, keeping its readable entries."""

        def valid(blob: object) -> bool:
            return isinstance(blob, bytes) and len(blob) % 4 == 0 and len(blob) > 0

        return SQLiteStore.rebuild(path if path is not None else default_cache_path(), CACHE_FORMAT, valid)
