"""Bayes-optimal accuracy on the synthetic task, exactly, and a Bayes predictor for finite episodes.

Derivation (spec §5a). For a pair ``(a, b)`` of independent ``U(0, 1)`` options:

* both ``< 0.5`` (probability 1/4): both rewards equal ``y``, so the types **agree**;
* both ``>= 0.5`` (1/4): type 0 picks the larger, type 1 (``1 - y``) the smaller: they **conflict**;
* one each side (1/2), ``lo < 0.5 <= hi``: type 0 picks ``hi`` (``2 hi >= 1 > lo``); type 1 picks
  ``hi`` iff ``1 - hi > lo`` iff ``lo + hi < 1``. Given this case ``lo ~ U(0, .5)`` and
  ``hi ~ U(.5, 1)`` independently, and ``P(lo + hi < 1)`` is the area of a right triangle with legs
  1/2 inside the ``1/2 x 1/2`` square: ``(1/8) / (1/4) = 1/2``. Agreement probability 1/4.

So ``p_agree = 1/4 + 1/4 = 1/2`` exactly. Labels are deterministic given the type and the prior over
the two types is uniform. After ``m`` context pairs the posterior is uniform over the types consistent
with every observed choice: one conflicting pair identifies the type (posterior 1 on it), whereas
agreeing pairs carry no information. The context is uninformative with probability ``p_agree^m``;
then the best prediction is right on agreeing targets and a coin flip on conflicting ones
(``p_agree + (1 - p_agree)/2``); otherwise every target is right. Hence

    ``acc*(m) = 1 - p_agree^m (1 - p_agree) / 2 = 1 - 0.25 * 0.5^m``

(0.75, 0.875, 0.96875, 0.9921875, 0.99976 at ``m`` = 0, 1, 3, 5, 10). Ties have probability zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from personalign.np.episodes import Episode, PreferencePool


def agreement_probability() -> Fraction:
    """Exact probability that the two synthetic types choose the same option (see module docstring)."""
    both_low = Fraction(1, 2) * Fraction(1, 2)
    mixed = 2 * Fraction(1, 2) * Fraction(1, 2)
    triangle = Fraction(1, 2) * Fraction(1, 2) * Fraction(1, 2)  # area {lo + hi < 1} in [0,.5) x [.5,1)
    mixed_agree = triangle / (Fraction(1, 2) * Fraction(1, 2))
    return both_low + mixed * mixed_agree


def bayes_optimal_accuracy_exact(num_context: int) -> Fraction:
    """``acc*(m)`` as an exact fraction."""
    if num_context < 0:
        raise ValueError("num_context must be >= 0")
    p = agreement_probability()
    return 1 - p**num_context * (1 - p) / 2


def bayes_optimal_accuracy(num_context: int) -> float:
    """``acc*(m) = 1 - 0.25 * 0.5**m`` on the synthetic task (expected per-target accuracy)."""
    return float(bayes_optimal_accuracy_exact(num_context))


def bayes_table(context_sizes: Sequence[int]) -> dict[str, float]:
    """``{"m": acc*(m)}`` with string keys, as written to ``synthetic.json``."""
    return {str(m): bayes_optimal_accuracy(m) for m in context_sizes}


def bayes_episode_accuracy(labels: np.ndarray, episode: Episode) -> float:
    """Accuracy of the Bayes-optimal predictor on one finite episode of a noise-free pool.

    ``labels`` is the pool's ``(K, N)`` label matrix (every type defined on the episode's pairs).
    Posterior: uniform over the types whose labels match all observed context choices. Each target is
    predicted by posterior majority (a tie scores 0.5).
    """
    true = episode.type_index
    ctx = episode.context_ids
    consistent = (
        (labels[:, ctx] == labels[true, ctx]).all(axis=1) if len(ctx) else np.ones(labels.shape[0], bool)
    )
    post = consistent / consistent.sum()
    agree = labels[:, episode.target_ids] == labels[true, episode.target_ids]  # (K, T)
    mass = post @ agree  # posterior mass on the true choice, per target
    return float(np.where(mass > 0.5, 1.0, np.where(mass == 0.5, 0.5, 0.0)).mean())


def bayes_pool_accuracy(pool: PreferencePool, episodes: Sequence[Episode]) -> float:
    """Mean Bayes-predictor accuracy over ``episodes`` drawn from ``pool``."""
    return float(np.mean([bayes_episode_accuracy(pool.labels, e) for e in episodes]))


def monte_carlo_bayes_accuracy(
    num_context: int, *, episodes: int = 20_000, targets: int = 20, seed: int = 0
) -> float:
    """Monte Carlo estimate of ``acc*(m)`` with fresh ``U(0,1)`` pairs (independent of the derivation:
    it simulates the labelling functions and the consistent-type posterior directly)."""
    from personalign.np.synthetic import label_pairs

    rng = np.random.default_rng(seed)
    n = num_context + targets
    pairs = rng.uniform(size=(episodes * n, 2))
    labels = label_pairs(pairs, rng).reshape(2, episodes, n)
    types = rng.integers(0, 2, size=episodes)
    acc = np.empty(episodes)
    for e in range(episodes):
        lab = labels[:, e]
        ctx, tgt = lab[:, :num_context], lab[:, num_context:]
        consistent = (ctx == ctx[types[e]]).all(axis=1)
        post = consistent / consistent.sum()
        mass = post @ (tgt == tgt[types[e]])
        acc[e] = np.where(mass > 0.5, 1.0, np.where(mass == 0.5, 0.5, 0.0)).mean()
    return float(acc.mean())
