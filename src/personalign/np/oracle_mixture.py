"""The posterior mixture of the per-type oracles: what conditioning could reach with these features.

On the synthetic task the Bayes-optimal accuracy is exact (:mod:`personalign.np.bayes`). On real text
it is not computable, but the per-type oracles give a close stand-in: treat each oracle ``j`` as the
true reward model of type ``j``, infer the user's type from the context by Bayes' rule over a uniform
prior,

    ``P(j | C) ∝ Π_{(c, r) ∈ C} σ(r_j(c) − r_j(r))``,

and predict each target with ``Σ_j P(j | C) σ(r_j(a) − r_j(b))``. Bayes' rule is only as good as the
likelihoods, and an oracle trained with early stopping is not calibrated, so each oracle's reward
differences are first rescaled by one factor ``s_j`` fitted on the validation pairs of its own type
(:func:`calibration_scales`, temperature scaling).

This is roughly what an NP would reach if it had learnt every type's reward as well as that type's own
oracle and inferred the type by Bayes' rule. It is a reference, not a bound: a model can beat it by
sharing what the types have in common. Its gap to a type's oracle at ``m`` context pairs shows how much
the context leaves the type unidentified (a type whose labels the features barely predict is barely
identifiable); NP-BTL's gap to it shows what conditioning is still leaving behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from personalign.np.episodes import Episode, PreferencePool
from personalign.np.errors import NPInputError
from personalign.np.models import RewardModel


@torch.no_grad()
def _pair_logits(oracles: Sequence[RewardModel], pairs: np.ndarray) -> np.ndarray:
    """``(J, n)``: ``r_j(first) − r_j(second)`` of every oracle on ``n`` pairs ``(n, 2, d)``."""
    out = []
    for o in oracles:
        o.eval()
        x = torch.from_numpy(np.ascontiguousarray(pairs.reshape(-1, pairs.shape[-1]), dtype=np.float32))
        r = o.rewards(x.to(o.device), None).double().cpu().numpy().reshape(-1, 2)
        out.append(r[:, 0] - r[:, 1])
    return np.stack(out)


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


_SCALES = np.exp(np.linspace(np.log(0.02), np.log(50.0), 400))


def calibration_scales(oracles: Sequence[RewardModel], pool: PreferencePool) -> np.ndarray:
    """``(J,)``: for oracle ``j``, the factor ``s`` (grid over 0.02…50, log-spaced) minimising the NLL
    ``−log σ(s · (r_j(chosen) − r_j(rejected)))`` on ``pool``'s pairs of type ``j`` (oracle ``j`` is the
    oracle of the pool's label row ``j``)."""
    if len(oracles) != pool.num_types:
        raise NPInputError(f"need one oracle per label row ({pool.num_types}), got {len(oracles)}")
    scales = np.empty(len(oracles))
    for j, o in enumerate(oracles):
        ids = pool.defined(j)
        if ids.size == 0:
            raise NPInputError(f"no pairs of type {j} to calibrate its oracle on")
        d = _pair_logits([o], pool.ordered(ids, j))[0]
        nll = -_log_sigmoid(_SCALES[:, None] * d[None, :]).mean(axis=1)
        scales[j] = _SCALES[int(np.argmin(nll))]
    return scales


def type_posterior(
    oracles: Sequence[RewardModel], context: np.ndarray, scales: np.ndarray | None = None
) -> np.ndarray:
    """``P(j | C)`` over the oracles' types for one context ``(m, 2, d)``, chosen option first
    (uniform for ``m = 0``); ``scales`` multiply each oracle's reward differences (default 1)."""
    if not oracles:
        raise NPInputError("the oracle mixture needs at least one oracle")
    return _posterior(_pair_logits(oracles, context) * _scales(oracles, scales))


def _posterior(context_logits: np.ndarray) -> np.ndarray:
    """Bayes' rule with a uniform prior from the ``(J, m)`` scaled reward differences of a context
    (uniform for ``m = 0``)."""
    ll = _log_sigmoid(context_logits).sum(axis=1)
    w = np.exp(ll - ll.max())
    return w / w.sum()


def _episode_logits(
    oracles: Sequence[RewardModel], parts: Sequence[np.ndarray], scales: np.ndarray | None
) -> list[np.ndarray]:
    """Scaled ``(J, n_i)`` reward differences of every oracle on each array of pairs in ``parts``,
    all scored in one pass per oracle (an empty array gives ``(J, 0)``)."""
    sizes = [len(x) for x in parts]
    if not sum(sizes):
        return [np.zeros((len(oracles), 0)) for _ in parts]
    logits = _pair_logits(oracles, np.concatenate(parts)) * _scales(oracles, scales)
    return np.split(logits, np.cumsum(sizes)[:-1], axis=1)


def mixture_accuracies(
    oracles: Sequence[RewardModel], episodes: Sequence[Episode], scales: np.ndarray | None = None
) -> np.ndarray:
    """Per-episode target accuracy ``(len(episodes),)`` of the posterior mixture (tie = 0.5). Every
    oracle scores all the episodes' pairs in one pass."""
    if not oracles:
        raise NPInputError("the oracle mixture needs at least one oracle")
    if not episodes:
        return np.empty(0)
    chunks = _episode_logits(oracles, [e.context for e in episodes] + [e.targets for e in episodes], scales)
    out = np.empty(len(episodes))
    for i, (ctx, tgt) in enumerate(zip(chunks[: len(episodes)], chunks[len(episodes) :], strict=True)):
        p = _posterior(ctx) @ (1.0 / (1.0 + np.exp(-tgt)))
        out[i] = float(np.mean((p > 0.5) + 0.5 * (p == 0.5)))
    return out


def identification_rates(
    oracles: Sequence[RewardModel],
    episodes: Sequence[Episode],
    type_index: int,
    scales: np.ndarray | None = None,
) -> np.ndarray:
    """Per episode, whether the posterior names the user's type: 1 if oracle ``type_index`` is the
    single most probable one given the context, ``1/k`` if it ties with ``k - 1`` others (so an empty
    context scores ``1/J``), else 0. How well ``m`` pairs can tell this user's type apart."""
    if not 0 <= type_index < len(oracles):
        raise NPInputError(f"type_index {type_index} is not one of the {len(oracles)} oracles")
    out = np.empty(len(episodes))
    for i, ctx in enumerate(_episode_logits(oracles, [e.context for e in episodes], scales)):
        post = _posterior(ctx)
        best = np.flatnonzero(post == post.max())
        out[i] = 1.0 / len(best) if type_index in best else 0.0
    return out


def _scales(oracles: Sequence[RewardModel], scales: np.ndarray | None) -> np.ndarray:
    if scales is None:
        return np.ones((len(oracles), 1))
    s = np.asarray(scales, dtype=np.float64).reshape(-1, 1)
    if len(s) != len(oracles):
        raise NPInputError(f"got {len(s)} scales for {len(oracles)} oracles")
    return s
