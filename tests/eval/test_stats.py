"""Bootstrap intervals, the Wilcoxon signed-rank test (Pratt) and Holm, on known inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from personalign.eval.stats import bootstrap_ci, holm, paired_comparison, wilcoxon_pratt


def test_bootstrap_matches_scipy_percentile_bootstrap() -> None:
    x = np.array([0.4, 0.55, 0.6, 0.3, 0.9, 0.75, 0.5, 0.45, 0.65, 0.35])
    ours = bootstrap_ci(x, seed=7)
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=10_000, method="percentile", rng=np.random.default_rng(7), vectorized=True
    )
    assert ours.mean == pytest.approx(x.mean())
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=2e-3)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=2e-3)
    assert ours.low < ours.mean < ours.high
    assert ours.n == 10


def test_bootstrap_is_seeded_and_degenerate_cases() -> None:
    x = list(np.random.default_rng(5).uniform(0, 1, 15))
    assert bootstrap_ci(x, seed=3, n_resamples=500) == bootstrap_ci(x, seed=3, n_resamples=500)
    assert bootstrap_ci(x, seed=3, n_resamples=500) != bootstrap_ci(x, seed=4, n_resamples=500)
    c = bootstrap_ci([0.5] * 6)
    assert (c.low, c.mean, c.high) == (0.5, 0.5, 0.5)
    assert math.isnan(bootstrap_ci([]).mean)
    with pytest.raises(ValueError, match="nan"):
        bootstrap_ci([0.1, math.nan])


def test_bootstrap_coverage_is_roughly_nominal() -> None:
    rng = np.random.default_rng(0)
    hits = sum(
        (ci := bootstrap_ci(rng.normal(0.0, 1.0, 40), n_resamples=2000, seed=i)).low <= 0.0 <= ci.high
        for i in range(200)
    )
    assert 0.88 <= hits / 200 <= 0.99


def _exact_two_sided(d: list[float]) -> float:
    """Exact signed-rank p-value by enumerating all sign flips (no zeros, no ties)."""
    ranks = sps.rankdata(np.abs(d))
    t_obs = sum(r for r, x in zip(ranks, d, strict=True) if x > 0)
    n = len(d)
    mean = n * (n + 1) / 4
    ts = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=n)
    ]
    extreme = sum(abs(t - mean) >= abs(t_obs - mean) - 1e-12 for t in ts)
    return extreme / len(ts)


def test_wilcoxon_exact_matches_enumeration() -> None:
    d = [0.12, -0.05, 0.3, 0.07, 0.2, -0.01, 0.15]
    assert wilcoxon_pratt(d) == pytest.approx(_exact_two_sided(d), abs=1e-12)


def _pratt_sign_flip_p(d: np.ndarray) -> float:
    """Exact permutation p-value of Pratt's statistic: ranks over all |d| (zeros included), then
    the signs of the non-zero items flipped in every way."""
    ranks = sps.rankdata(np.abs(d))
    nz = ranks[d != 0]
    t_obs, mu = ranks[d > 0].sum(), nz.sum() / 2
    ts = [
        sum(r for r, s in zip(nz, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=nz.size)
    ]
    return sum(abs(t - mu) >= abs(t_obs - mu) - 1e-12 for t in ts) / len(ts)


def test_wilcoxon_pratt_small_sample_with_zeros_is_exact_permutation() -> None:
    d = np.array([0.0, 0.0, 0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8])
    assert wilcoxon_pratt(d) == pytest.approx(_pratt_sign_flip_p(d), abs=1e-12)
    assert wilcoxon_pratt([0.0, 0.0, 0.0]) == 1.0


def test_wilcoxon_pratt_large_sample_normal_approximation_by_hand() -> None:
    # 20 users with zeros and ties: Pratt ranks, normal approximation with the conditional
    # variance sum(r^2)/4 over the non-zero ranks (no continuity correction).
    d = np.array([0.1, 0, 0.1, 0.1, 0, 0.1, 0.2, 0.1, 0, -0.1, 0, 0.1, -0.2, 0, -0.1, 0, 0, 0, 0.1, 0.2])
    ranks = sps.rankdata(np.abs(d))
    nz = ranks[d != 0]
    z = (ranks[d > 0].sum() - nz.sum() / 2) / math.sqrt((nz**2).sum() / 4)
    assert wilcoxon_pratt(d) == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-9)


def test_holm_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])
    assert holm([0.04, 0.5]) == pytest.approx([0.08, 0.5])
    out = holm([0.02, math.nan, 0.01])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_paired_comparison_uses_common_users() -> None:
    a = {"u1": 0.8, "u2": 0.6, "u3": 0.5, "u4": 0.9}
    b = {"u1": 0.6, "u2": 0.6, "u3": 0.4, "u5": 0.1}
    r = paired_comparison("fermi", "zero-shot", a, b, n_resamples=500)
    assert r.diff.n == 3
    assert r.diff.mean == pytest.approx((0.2 + 0.0 + 0.1) / 3)
    assert (r.wins, r.ties, r.losses) == (2, 1, 0)
    assert 0 < r.p_value <= 1
