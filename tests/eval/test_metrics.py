"""Distributional metrics and accuracy on hand-computed cases (and against scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from personalign.eval.metrics import accuracy, distribution_similarity, js_similarity, w1_similarity


def test_accuracy_counts_none_as_wrong() -> None:
    assert accuracy([0, 1, None, 2], [0, 2, 1, 2]) == 0.5
    assert math.isnan(accuracy([], []))
    with pytest.raises(ValueError, match="predictions"):
        accuracy([0], [0, 1])


def test_js_similarity_hand_cases() -> None:
    assert js_similarity([1, 0], [0, 1]) == pytest.approx(0.0)
    assert js_similarity([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == pytest.approx(1.0)
    # hand: m=[.75,.25]; KL(p|m)=0.207519, KL(q|m)=0.415037; JSD=0.311278; 1-sqrt(JSD) = 0.442077
    assert js_similarity([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.442077, abs=1e-6)
    # unnormalised counts are normalised first
    assert js_similarity([1, 1], [4, 0]) == pytest.approx(0.442077, abs=1e-6)


def test_js_similarity_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
        assert js_similarity(p, q) == pytest.approx(1 - jensenshannon(p, q, base=2), abs=1e-9)


def test_w1_similarity_hand_cases() -> None:
    # Refused (ordinal None) is dropped and both distributions renormalised.
    assert w1_similarity([1, 0, 0, 0], [0, 0, 1, 0], [1, 2, 3, None]) == pytest.approx(0.0)
    assert w1_similarity([0.5, 0, 0, 0.5], [0, 0, 0.5, 0.5], [1, 2, 3, None]) == pytest.approx(0.0)
    assert w1_similarity([0.5, 0.5, 0], [0, 0.5, 0.5], [1, 2, 3]) == pytest.approx(0.5)
    # ordinals out of list order: positions follow the ordinal values
    assert w1_similarity([1, 0, 0], [0, 0, 1], [3, 1, 2]) == pytest.approx(0.5)
    assert w1_similarity([1, 0, 0], [0, 1, 0], [3, 1, 2]) == pytest.approx(0.0)
    assert w1_similarity([0.3, 0.7], [0.9, 0.1], [1, None]) == 1.0  # a single ordinal option
    with pytest.raises(ValueError, match="sums to zero"):
        w1_similarity([0, 0, 1], [0.5, 0.5, 0], [1, 2, None])


def test_w1_similarity_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    for n in (2, 3, 5):
        p, q = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n))
        pos = np.arange(n)
        expected = 1 - wasserstein_distance(pos, pos, p, q) / (n - 1)
        assert w1_similarity(p, q, list(range(1, n + 1))) == pytest.approx(expected, abs=1e-9)


def test_distribution_similarity_dispatch() -> None:
    assert distribution_similarity("js", [1, 0], [1, 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ordinals"):
        distribution_similarity("w1", [1, 0], [1, 0])
    with pytest.raises(ValueError, match="available"):
        distribution_similarity("kl", [1, 0], [1, 0])  # type: ignore[arg-type]
