"""Per-user scores: accuracy and distributional similarity (spec fermi.md §2, §6).

* **Accuracy**: ``pred == gold``; an unparsed answer (``pred is None``) counts as wrong. Per-user
  accuracy is macro-averaged over users (the primary metric); micro accuracy pools all items.
* **GlobalOpinionQA**: ``1 - JS distance`` (base 2; the distance is the square root of the
  divergence), between the method's option probabilities and the country's answer distribution.
* **OpinionQA groups**: ``1 - W1 / (n - 1)`` on ordinal option *positions* ``0 … n-1`` (options
  sorted by their ordinal), after dropping options without an ordinal (``Refused``) from both
  distributions and renormalising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

DistributionMetric = Literal["js", "w1"]

#: Which distributional metric each registered dataset's targets call for (others: none).
DATASET_DISTRIBUTION_METRIC: dict[str, DistributionMetric] = {
    "globalopinionqa": "js",
    "opinionqa-groups": "w1",
}


def accuracy(preds: Sequence[int | None], golds: Sequence[int]) -> float:
    """Fraction of ``preds`` equal to ``golds`` (``None`` is wrong); ``nan`` for no items."""
    if len(preds) != len(golds):
        raise ValueError(f"{len(preds)} predictions for {len(golds)} gold answers")
    if not golds:
        return math.nan
    return sum(p is not None and p == g for p, g in zip(preds, golds, strict=True)) / len(golds)


def _normalise(p: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(p, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-D distribution")
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must hold finite non-negative numbers, got {list(arr)}")
    total = arr.sum()
    if total <= 0:
        raise ValueError(f"{what} sums to zero")
    return arr / total


def js_similarity(p: Sequence[float], q: Sequence[float]) -> float:
    """``1 - JS distance`` with base-2 logarithms (1 = identical, 0 = disjoint supports)."""
    if len(p) != len(q):
        raise ValueError(f"distributions of different lengths: {len(p)} vs {len(q)}")
    pa, qa = _normalise(p, "p"), _normalise(q, "q")
    m = (pa + qa) / 2

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / m[mask])))

    divergence = max(0.0, (kl(pa) + kl(qa)) / 2)
    return 1.0 - math.sqrt(min(1.0, divergence))


def w1_similarity(p: Sequence[float], q: Sequence[float], ordinals: Sequence[float | None]) -> float:
    """``1 - W1/(n-1)`` over ordinal positions, dropping options whose ordinal is ``None``.

    Options are ordered by their ordinal value and placed at positions ``0 … n-1``; both
    distributions are restricted to those options and renormalised. With one ordinal option the
    similarity is 1. Raises ``ValueError`` if either distribution has no mass left after dropping.
    """
    if not len(p) == len(q) == len(ordinals):
        raise ValueError(f"lengths differ: p={len(p)}, q={len(q)}, ordinals={len(ordinals)}")
    keep = sorted((o, j) for j, o in enumerate(ordinals) if o is not None)
    if not keep:
        raise ValueError("no ordinal options")
    idx = [j for _, j in keep]
    pa = _normalise([p[j] for j in idx], "p (ordinal options)")
    qa = _normalise([q[j] for j in idx], "q (ordinal options)")
    n = len(idx)
    if n == 1:
        return 1.0
    # W1 between distributions on positions 0..n-1 = sum of |CDF differences| (unit spacing).
    w1 = float(np.sum(np.abs(np.cumsum(pa) - np.cumsum(qa))[:-1]))
    return 1.0 - w1 / (n - 1)


def distribution_similarity(
    metric: DistributionMetric,
    probs: Sequence[float],
    target: Sequence[float],
    ordinals: Sequence[float | None] | None = None,
) -> float:
    """Dispatch to :func:`js_similarity` or :func:`w1_similarity` (which needs ``ordinals``)."""
    if metric == "js":
        return js_similarity(probs, target)
    if metric == "w1":
        if ordinals is None:
            raise ValueError("the W1 similarity needs the question's option ordinals")
        return w1_similarity(probs, target, ordinals)
    raise ValueError(f"unknown distribution metric {metric!r}; available: js, w1")
