"""Intervals and paired tests over users (spec fermi.md §6).

* :func:`bootstrap_ci`: 95% percentile bootstrap of the mean over users (10,000 resamples, seeded).
* :func:`paired_comparison`: per-user differences ``d_u``; their mean, a bootstrap CI and a
  two-sided Wilcoxon signed-rank test with Pratt zero handling (``scipy.stats.wilcoxon``).
* :func:`holm`: Holm's step-down correction of a family of p-values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

N_RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap interval."""

    mean: float
    low: float
    high: float
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, n_resamples: int = N_RESAMPLES, seed: int = 0
) -> Interval:
    """Percentile bootstrap interval of the mean of ``values`` (resampling users with replacement).

    ``nan`` values are rejected: drop users without a score before calling. One value gives a
    degenerate interval; no values gives ``nan`` everywhere.
    """
    x = np.asarray(values, dtype=float)
    if np.any(np.isnan(x)):
        raise ValueError("bootstrap_ci got nan values; drop users without a score first")
    if x.size == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(float(x.mean()), float(low), float(high), int(x.size))


def wilcoxon_pratt(d: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value with Pratt zero handling; 1.0 if every ``d`` is 0."""
    arr = np.asarray(d, dtype=float)
    if arr.size == 0:
        return math.nan
    if np.all(arr == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample / ties notices: the p-value is still defined
        res = sps.wilcoxon(arr, zero_method="pratt", alternative="two-sided")
    return float(res.pvalue)


@dataclass(frozen=True)
class PairedResult:
    """``a - b`` over users both were scored on."""

    a: str
    b: str
    diff: Interval
    p_value: float
    p_holm: float = math.nan
    wins: int = 0
    ties: int = 0
    losses: int = 0

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["diff"] = self.diff.to_dict()
        return d


def paired_comparison(
    a: str,
    b: str,
    scores_a: dict[str, float],
    scores_b: dict[str, float],
    *,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> PairedResult:
    """Compare two methods on the users both have a score for (``d_u = a_u - b_u``)."""
    users = sorted(set(scores_a) & set(scores_b))
    d = [scores_a[u] - scores_b[u] for u in users]
    d = [x for x in d if not math.isnan(x)]
    return PairedResult(
        a=a,
        b=b,
        diff=bootstrap_ci(d, n_resamples=n_resamples, seed=seed),
        p_value=wilcoxon_pratt(d),
        wins=sum(x > 0 for x in d),
        ties=sum(x == 0 for x in d),
        losses=sum(x < 0 for x in d),
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order (``nan`` stays ``nan``, not counted)."""
    valid = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    m = len(valid)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(valid)):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
