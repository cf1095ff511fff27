"""The Bayes-optimal accuracy of the synthetic task: exact derivation vs Monte Carlo."""

from fractions import Fraction

import numpy as np
import pytest

from personalign.np.bayes import (
    agreement_probability,
    bayes_optimal_accuracy,
    bayes_optimal_accuracy_exact,
    bayes_pool_accuracy,
    monte_carlo_bayes_accuracy,
)
from personalign.np.episodes import evaluation_episodes
from personalign.np.synthetic import label_pairs


def test_agreement_probability_is_one_half_exactly():
    assert agreement_probability() == Fraction(1, 2)


def test_agreement_probability_matches_simulation():
    rng = np.random.default_rng(1)
    pairs = rng.uniform(size=(200_000, 2))
    labels = label_pairs(pairs, rng)
    assert abs((labels[0] == labels[1]).mean() - 0.5) < 0.005


def test_closed_form_values():
    assert bayes_optimal_accuracy_exact(0) == Fraction(3, 4)
    assert bayes_optimal_accuracy_exact(1) == Fraction(7, 8)
    assert bayes_optimal_accuracy_exact(3) == Fraction(31, 32)
    assert bayes_optimal_accuracy(10) == pytest.approx(1 - 0.25 / 1024)
    with pytest.raises(ValueError):
        bayes_optimal_accuracy_exact(-1)


@pytest.mark.parametrize("m", [0, 1, 2, 3, 5])
def test_bayes_matches_monte_carlo(m):
    mc = monte_carlo_bayes_accuracy(m, episodes=6000, seed=m)
    # sd of the per-episode mean is < 0.25/sqrt(6000) ≈ 0.0032
    assert abs(mc - bayes_optimal_accuracy(m)) < 0.012


def test_bayes_predictor_on_finite_pool_episodes(synth):
    pool = synth.pool("test")
    for m in (0, 1, 3):
        eps = [
            e
            for k in (0, 1)
            for e in evaluation_episodes(
                synth, seed=3, split="test", type_index=k, num_context=m, n=300, num_targets=20
            )
        ]
        assert abs(bayes_pool_accuracy(pool, eps) - bayes_optimal_accuracy(m)) < 0.02
