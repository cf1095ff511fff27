"""The evaluation grid: accuracy by user type and context size on targets disjoint from the context
(spec ``np-alignment.md`` §3).

For each type ``k`` and context size ``m``, ``E`` episodes are drawn from the test split with the
fixed evaluation seed (identical for every model), each with ``m`` context pairs and ``T`` targets
**disjoint** from them. Accuracy = fraction of targets with ``r(chosen) > r(rejected)`` (a tie scores
0.5). We report the mean over episodes with a 95 % interval ``mean ± 1.96 sd / sqrt(E)``, per type and
averaged over types; :func:`aggregate_seeds` gives the spread over training seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from personalign.np.episodes import Episode, EpisodeSource, collate, evaluation_episodes
from personalign.np.models import RewardModel

DEFAULT_CONTEXT_SIZES = tuple(range(11))
BENCH_CONTEXT_SIZES = (0, 1, 3, 5, 10)

# two-sided 95 % Student t quantiles by degrees of freedom (seed-level intervals)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


@dataclass(frozen=True)
class Cell:
    """Accuracy of one (type, m) cell: mean and 95 % interval over ``n`` episodes (or seeds)."""

    mean: float
    ci95: tuple[float, float]
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": list(self.ci95), "n": self.n}


def _cell(values: np.ndarray) -> Cell:
    n = len(values)
    mean = float(np.mean(values))
    half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    return Cell(mean, (mean - half, mean + half), n)


def seed_interval(values: Sequence[float]) -> Cell:
    """Mean and 95 % Student-t interval over training seeds."""
    v = np.asarray(values, dtype=np.float64)
    n = len(v)
    mean = float(v.mean())
    if n < 2:
        return Cell(mean, (mean, mean), n)
    half = _T95.get(n - 1, 1.96) * float(v.std(ddof=1)) / math.sqrt(n)
    return Cell(mean, (mean - half, mean + half), n)


@dataclass
class GridResult:
    """Accuracy grid of one model. ``per_type[type_name][m]`` and ``average[m]`` are :class:`Cell`;
    ``episode_accuracy[type_name][m]`` keeps the per-episode values."""

    type_names: tuple[str, ...]
    context_sizes: tuple[int, ...]
    per_type: dict[str, dict[int, Cell]] = field(default_factory=dict)
    average: dict[int, Cell] = field(default_factory=dict)
    episode_accuracy: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    def mean_table(self) -> dict[int, float]:
        return {m: c.mean for m, c in self.average.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "types": list(self.type_names),
            "context_sizes": list(self.context_sizes),
            "per_type": {
                k: {str(m): c.to_dict() for m, c in row.items()} for k, row in self.per_type.items()
            },
            "average": {str(m): c.to_dict() for m, c in self.average.items()},
        }


@torch.no_grad()
def target_correctness(
    model: RewardModel, episodes: Sequence[Episode], *, batch_size: int = 500, seed: int = 0
) -> list[np.ndarray]:
    """Per episode, the score of each target in eval mode: 1 if ``r(chosen) > r(rejected)``, 0.5 on a
    tie, else 0 (aligned with the episode's ``target_ids``)."""
    model.eval()
    gen = torch.Generator(device=model.device).manual_seed(seed)
    out: list[np.ndarray] = []
    for i in range(0, len(episodes), batch_size):
        chunk = episodes[i : i + batch_size]
        # one probability per real (unpadded) target, episode by episode
        p = model.target_probabilities(collate(chunk).to(model.device), generator=gen)
        correct = ((p > 0.5).double() + 0.5 * (p == 0.5).double()).cpu().numpy()
        out += np.split(correct, np.cumsum([len(e.target_ids) for e in chunk])[:-1])
    return out


def episode_accuracies(
    model: RewardModel, episodes: Sequence[Episode], *, batch_size: int = 500, seed: int = 0
) -> np.ndarray:
    """Per-episode target accuracy ``(len(episodes),)`` in eval mode."""
    scores = target_correctness(model, episodes, batch_size=batch_size, seed=seed)
    return np.array([s.mean() for s in scores], dtype=np.float64)


def evaluate_grid(
    model: RewardModel,
    source: EpisodeSource,
    *,
    context_sizes: Sequence[int] = DEFAULT_CONTEXT_SIZES,
    episodes: int = 1000,
    num_targets: int = 20,
    seed: int = 0,
    split: str = "test",
    type_indices: Sequence[int] | None = None,
    batch_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
    episode_cache: dict[tuple[int, int], list[Episode]] | None = None,
) -> GridResult:
    """Accuracy of ``model`` by type and context size (see module docstring).

    ``episode_cache`` (optional, keyed by ``(type, m)``) lets several models share the drawn episodes.
    ``progress(done, total)`` is called after each cell.
    """
    names = tuple(source.type_names)
    types = list(type_indices) if type_indices is not None else list(range(len(names)))
    res = GridResult(tuple(names[k] for k in types), tuple(context_sizes))
    total, done = len(types) * len(context_sizes), 0
    for k in types:
        row: dict[int, Cell] = {}
        res.episode_accuracy[names[k]] = {}
        for m in context_sizes:
            key = (k, m)
            eps = episode_cache.get(key) if episode_cache is not None else None
            if eps is None:
                eps = evaluation_episodes(
                    source,
                    seed=seed,
                    split=split,
                    type_index=k,
                    num_context=m,
                    n=episodes,
                    num_targets=num_targets,
                )
                if episode_cache is not None:
                    episode_cache[key] = eps
            acc = episode_accuracies(model, eps, batch_size=batch_size, seed=seed)
            res.episode_accuracy[names[k]][m] = acc
            row[m] = _cell(acc)
            done += 1
            if progress is not None:
                progress(done, total)
        res.per_type[names[k]] = row
    for m in context_sizes:
        cells = [res.per_type[n][m] for n in res.type_names]
        accs = [res.episode_accuracy[n][m] for n in res.type_names]
        mean = float(np.mean([c.mean for c in cells]))
        var = sum(float(np.var(a, ddof=1)) / len(a) if len(a) > 1 else 0.0 for a in accs) / len(accs) ** 2
        half = 1.96 * math.sqrt(var)
        res.average[m] = Cell(mean, (mean - half, mean + half), sum(len(a) for a in accs))
    return res


def aggregate_seeds(results: Sequence[GridResult]) -> dict[int, Cell]:
    """Average accuracy per context size over training seeds: mean and 95 % t-interval."""
    sizes = results[0].context_sizes
    return {m: seed_interval([r.average[m].mean for r in results]) for m in sizes}
