"""The text featurizer: truncation, normalisation, length feature, the identical-embedding check and
the on-disk feature table (fast: hashing embedder)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from personalign.embed.hashing import HashingEmbedder
from personalign.np.features import (
    FeaturizerConfig,
    TextFeatures,
    TextFeaturizer,
    truncate_prompt,
    truncate_response,
)


class CountingEmbedder(HashingEmbedder):
    """Hashing embedder that records every text it embeds."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__(dim)
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += list(texts)
        return super().encode(texts)


def test_prompt_is_left_truncated_and_response_right_truncated():
    text = " ".join(f"t{i}" for i in range(10))
    assert truncate_prompt(text, 3) == "t7 t8 t9"
    assert truncate_response(text, 3) == "t0 t1 t2"
    assert truncate_prompt("a  b", 5) == "a b"


def test_featurizer_embeds_truncated_texts_and_normalises_each_half():
    emb = CountingEmbedder(32)
    fz = TextFeaturizer(emb, FeaturizerConfig(prompt_words=2, response_words=2))
    f = fz.features(["one two three four"], ["alpha beta gamma"])
    assert emb.seen == ["three four", "alpha beta"]
    assert f.shape == (1, 64) and fz.dim == 64
    assert np.linalg.norm(f[0, :32]) == pytest.approx(1.0, abs=1e-5)
    assert np.linalg.norm(f[0, 32:]) == pytest.approx(1.0, abs=1e-5)


def test_length_feature_appends_log1p_of_full_word_count():
    fz = TextFeaturizer(HashingEmbedder(16), FeaturizerConfig(response_words=2, length_feature=True))
    f = fz.features(["p", "p"], ["a b c d e", "x"])
    assert fz.dim == 33 and f.shape == (2, 33)
    assert f[0, -1] == pytest.approx(math.log1p(5))  # counted before truncation
    assert f[1, -1] == pytest.approx(math.log1p(1))


def test_featurize_shares_prompts_and_checks_identical_fraction():
    fz = TextFeaturizer(HashingEmbedder(32))
    triples = [(f"prompt {i}", f"answer {i} is long", f"short {i}") for i in range(50)]
    feats = fz.featurize(triples)
    assert len(feats) == 50 and feats.dim == 64
    a, b = feats.pair_features()
    assert a.shape == b.shape == (50, 64)
    assert feats.identical_fraction() == 0.0
    feats.check()


def test_check_rejects_pairs_whose_responses_truncate_to_the_same_text():
    fz = TextFeaturizer(HashingEmbedder(32), FeaturizerConfig(response_words=3))
    triples = [(f"p{i}", f"same start here then {i}", f"same start here else {i}") for i in range(10)]
    feats = fz.featurize(triples)
    assert feats.identical_fraction() == 1.0
    with pytest.raises(ValueError, match="identical chosen/rejected embeddings"):
        feats.check()


def test_check_rejects_non_finite_features():
    feats = TextFeatures(
        np.array([[np.nan, 0.0]], np.float32),
        np.eye(2, dtype=np.float32),
        np.array([0]),
        np.array([0]),
        np.array([1]),
        "x",
        FeaturizerConfig(),
    )
    with pytest.raises(ValueError, match="NaN"):
        feats.check()


def test_feature_table_is_stored_once_and_reloaded(tmp_path):
    emb = CountingEmbedder(16)
    fz = TextFeaturizer(emb)
    triples = [("p", "a b c", "d"), ("q", "e", "f g h i")]
    first = fz.featurize_cached(triples, cache_root=tmp_path)
    n_seen = len(emb.seen)
    again = fz.featurize_cached(triples, cache_root=tmp_path)
    assert len(emb.seen) == n_seen  # loaded from disk, nothing re-embedded
    np.testing.assert_array_equal(first.response_emb, again.response_emb)
    np.testing.assert_array_equal(first.a_idx, again.a_idx)
    assert list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.pkl"))
    other = TextFeaturizer(emb, FeaturizerConfig(length_feature=True)).featurize_cached(
        triples, cache_root=tmp_path
    )
    assert other.response_emb.shape[1] == 17  # a different config is a different table


def test_features_rejects_misaligned_inputs():
    fz = TextFeaturizer(HashingEmbedder(16))
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        fz.features(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="no pairs"):
        fz.featurize([])
