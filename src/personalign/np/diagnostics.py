"""Conditioning diagnostics (spec ``np-alignment.md`` §3, [ours]) for pool-based sources.

* **Context swap**: score type-``k`` targets after conditioning on the *same* context pairs labelled by
  a conflicting type ``j``. A model that really reads the context must fall below its ``m = 0`` level.
* **Mixed contexts**: re-label a fraction ``rho`` of the context pairs with type ``j``; accuracy on
  type-``k`` targets should fall monotonically as ``rho`` grows.

Both reuse the ordinary evaluation episodes (context and targets disjoint) and only re-orient context
pairs through the pool's label matrix, so nothing else changes between the conditions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from personalign.np.episodes import Episode, PoolEpisodeSource, episode_rng, evaluation_episodes
from personalign.np.evaluate import episode_accuracies
from personalign.np.models import RewardModel


def relabel_context(
    source: PoolEpisodeSource,
    split: str,
    episode: Episode,
    other_type: int,
    fraction: float,
    rng: np.random.Generator,
) -> Episode:
    """``episode`` with a random ``fraction`` of its context pairs oriented by ``other_type``'s labels."""
    m = len(episode.context_ids)
    k = round(fraction * m)
    which = rng.choice(m, size=k, replace=False) if k else np.zeros(0, dtype=int)
    ctx = episode.context.copy()
    if k:
        ctx[which] = source.pool(split).ordered(episode.context_ids[which], other_type)
    return replace(episode, context=ctx)


def mixed_context_accuracy(
    model: RewardModel,
    source: PoolEpisodeSource,
    *,
    num_context: int = 10,
    fractions: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    episodes: int = 500,
    num_targets: int = 20,
    seed: int = 0,
    split: str = "test",
) -> dict[str, dict[str, float]]:
    """``{type_name: {rho: accuracy}}`` on type-``k`` targets when a fraction ``rho`` of the ``m``
    context pairs is labelled by the next type ``(k + 1) mod K``; ``rho = 1`` is the context swap. The
    ``"m=0"`` entry gives the no-context level for comparison."""
    names = list(source.type_names)
    out: dict[str, dict[str, float]] = {}
    for k, name in enumerate(names):
        j = (k + 1) % len(names)
        base = evaluation_episodes(
            source,
            seed=seed,
            split=split,
            type_index=k,
            num_context=num_context,
            n=episodes,
            num_targets=num_targets,
        )
        row: dict[str, float] = {}
        for rho in fractions:
            eps = [
                relabel_context(source, split, e, j, rho, episode_rng(seed, split, 13, k, i))
                for i, e in enumerate(base)
            ]
            row[f"{rho:g}"] = float(episode_accuracies(model, eps, seed=seed).mean())
        zero = [replace(e, context=e.context[:0], context_ids=e.context_ids[:0]) for e in base]
        row["m=0"] = float(episode_accuracies(model, zero, seed=seed).mean())
        out[name] = row
    return out
