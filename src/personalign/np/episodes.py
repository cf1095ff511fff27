"""Episodes (one simulated user each), the :class:`EpisodeSource` protocol and the batch datasets.

An *episode* is one user: a type ``k``, ``m`` context pairs and ``T`` target pairs, every pair ordered
chosen-first by ``k``'s labelling function (spec ``np-alignment.md`` §3). Any task plugs into the
trainer and the evaluator by implementing :class:`EpisodeSource`; the easiest way is a
:class:`PreferencePool` per split (pair features + a label matrix with one row per user type) wrapped
in :class:`PoolEpisodeSource`.

All randomness is *stateless*: an episode is a pure function of ``(seed, split, epoch, index)``
through :func:`episode_rng`, so epochs draw fresh episodes, runs are reproducible, and DataLoader
workers cannot duplicate or reorder them.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from personalign.np.errors import EmptyPairsError, FeatureDimensionError, NonFiniteFeaturesError, NPInputError

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}

_TAG_EVAL = 7
_TAG_VAL = 9
_TAG_BATCH = 11


def split_id(split: str) -> int:
    """Stable integer id of a split name (``train``/``val``/``test`` = 0/1/2, others hashed)."""
    return SPLIT_IDS.get(split, 1000 + zlib.crc32(split.encode()) % 1_000_000)


def episode_rng(seed: int, split: str, *keys: int) -> np.random.Generator:
    """A fresh generator keyed by ``(seed, split, *keys)``; equal keys give equal streams."""
    return np.random.default_rng([int(seed), split_id(split), *(int(k) for k in keys)])


@dataclass(frozen=True)
class Episode:
    """One user's episode.

    Attributes:
        context: ``(m, 2, d)`` float32, chosen option first.
        targets: ``(T, 2, d)`` float32, chosen option first.
        type_index: the user's type.
        context_ids: ``(m,)`` ids of the context pairs in their pool (for audits such as disjointness).
        target_ids: ``(T,)`` ids of the target pairs.
    """

    context: np.ndarray
    targets: np.ndarray
    type_index: int
    context_ids: np.ndarray
    target_ids: np.ndarray


@dataclass
class EpisodeBatch:
    """Padded tensors for ``B`` episodes (see :mod:`personalign.np.models` for shapes)."""

    context: torch.Tensor
    context_mask: torch.Tensor
    targets: torch.Tensor
    target_mask: torch.Tensor
    type_index: torch.Tensor

    def to(self, device: torch.device | str) -> EpisodeBatch:
        return EpisodeBatch(
            *(
                t.to(device)
                for t in (self.context, self.context_mask, self.targets, self.target_mask, self.type_index)
            )
        )

    @property
    def size(self) -> int:
        return int(self.type_index.shape[0])


def collate(episodes: Sequence[Episode]) -> EpisodeBatch:
    """Pad episodes of varying context/target sizes into one :class:`EpisodeBatch`."""
    if not episodes:
        raise EmptyPairsError("cannot collate an empty list of episodes")
    d = episodes[0].targets.shape[-1]
    b = len(episodes)
    m = max(e.context.shape[0] for e in episodes)
    t = max(e.targets.shape[0] for e in episodes)
    ctx = np.zeros((b, m, 2, d), dtype=np.float32)
    cmask = np.zeros((b, m), dtype=bool)
    tgt = np.zeros((b, t, 2, d), dtype=np.float32)
    tmask = np.zeros((b, t), dtype=bool)
    for i, e in enumerate(episodes):
        k, n = e.context.shape[0], e.targets.shape[0]
        ctx[i, :k], cmask[i, :k] = e.context, True
        tgt[i, :n], tmask[i, :n] = e.targets, True
    return EpisodeBatch(
        torch.from_numpy(ctx),
        torch.from_numpy(cmask),
        torch.from_numpy(tgt),
        torch.from_numpy(tmask),
        torch.tensor([e.type_index for e in episodes], dtype=torch.long),
    )


@runtime_checkable
class EpisodeSource(Protocol):
    """Anything that can draw one user's episode; what the trainer and the evaluator consume.

    Implementations must be deterministic given ``rng`` (all randomness from it) and picklable
    (DataLoader workers receive a copy).
    """

    @property
    def feature_dim(self) -> int:
        """Dimension ``d`` of one option's features."""
        ...

    @property
    def type_names(self) -> Sequence[str]:
        """Names of the user types, indexed by ``type_index``."""
        ...

    def sample_episode(
        self,
        rng: np.random.Generator,
        split: str,
        type_index: int,
        num_context: int,
        num_targets: int,
        disjoint: bool,
    ) -> Episode:
        """Draw an episode of type ``type_index`` from ``split``.

        With ``disjoint`` the ``num_context`` context pairs and the targets are distinct pairs (always
        the case in evaluation); otherwise the context is a random subset of the targets (standard
        NP training). A source may return fewer targets than asked when the split is too small, but
        never fewer than one.
        """
        ...


@dataclass(frozen=True)
class PreferencePool:
    """The pairs of one split with every user type's label.

    Attributes:
        features: ``(N, 2, d)`` float32 features of the two options ``a`` and ``b`` of each pair.
        labels: ``(K, N)`` int8: ``0`` = type ``k`` prefers ``a``, ``1`` = prefers ``b``, ``-1`` =
            undefined for ``k`` (the pair is never shown to users of that type).
    """

    features: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        f, lab = self.features, self.labels
        if f.ndim != 3 or f.shape[1] != 2:
            raise FeatureDimensionError(f"pool features must have shape (N, 2, d), got {f.shape}")
        if lab.ndim != 2 or lab.shape[1] != f.shape[0]:
            raise FeatureDimensionError(f"pool labels must have shape (K, {f.shape[0]}), got {lab.shape}")
        if not np.isfinite(f).all():
            bad = int(np.argwhere(~np.isfinite(f))[0][0])
            raise NonFiniteFeaturesError(f"pool features contain NaN/inf (first at pair {bad})")
        if not np.isin(lab, (-1, 0, 1)).all():
            raise NPInputError("pool labels must be -1 (undefined), 0 (a preferred) or 1 (b preferred)")
        object.__setattr__(self, "features", np.ascontiguousarray(f, dtype=np.float32))
        object.__setattr__(self, "labels", np.ascontiguousarray(lab, dtype=np.int8))
        object.__setattr__(self, "_defined", [np.flatnonzero(row >= 0) for row in self.labels])

    @property
    def num_types(self) -> int:
        return int(self.labels.shape[0])

    def defined(self, type_index: int) -> np.ndarray:
        """Indices of the pairs type ``type_index`` has a label for."""
        return self._defined[type_index]  # type: ignore[attr-defined]

    def ordered(self, ids: np.ndarray, type_index: int) -> np.ndarray:
        """Features ``(n, 2, d)`` of pairs ``ids``, chosen option first for type ``type_index``."""
        pairs = self.features[ids]
        flip = self.labels[type_index, ids] == 1
        return np.where(flip[:, None, None], pairs[:, ::-1], pairs)


class PoolEpisodeSource:
    """:class:`EpisodeSource` over one :class:`PreferencePool` per split.

    Args:
        pools: ``{"train": pool, "val": pool, "test": pool}`` (any split names).
        type_names: one name per label row.
        flip_prob: annotator noise: each shown label is flipped with this probability.
    """

    def __init__(
        self, pools: Mapping[str, PreferencePool], type_names: Sequence[str], flip_prob: float = 0.0
    ):
        if not pools:
            raise NPInputError("PoolEpisodeSource needs at least one split")
        dims = {p.features.shape[-1] for p in pools.values()}
        if len(dims) != 1:
            raise FeatureDimensionError(f"all splits must share one feature dimension, got {sorted(dims)}")
        for name, pool in pools.items():
            if pool.num_types != len(type_names):
                raise NPInputError(
                    f"split {name!r} has {pool.num_types} label rows but {len(type_names)} type names"
                )
        self.pools = dict(pools)
        self._type_names = tuple(type_names)
        self.flip_prob = float(flip_prob)
        self._dim = dims.pop()

    @property
    def feature_dim(self) -> int:
        return self._dim

    @property
    def type_names(self) -> Sequence[str]:
        return self._type_names

    def pool(self, split: str) -> PreferencePool:
        if split not in self.pools:
            raise NPInputError(f"unknown split {split!r}; available: {', '.join(sorted(self.pools))}")
        return self.pools[split]

    def sample_episode(
        self,
        rng: np.random.Generator,
        split: str,
        type_index: int,
        num_context: int,
        num_targets: int,
        disjoint: bool,
    ) -> Episode:
        pool = self.pool(split)
        avail = pool.defined(type_index)
        if disjoint:
            if avail.size < num_context + 1:
                raise NPInputError(
                    f"split {split!r} has {avail.size} pairs for type {self._type_names[type_index]!r}; "
                    f"need at least {num_context + 1} for {num_context} context pairs and one target"
                )
            n_t = min(num_targets, avail.size - num_context)
            picked = avail[rng.choice(avail.size, size=num_context + n_t, replace=False)]
            ctx_ids, tgt_ids = picked[:num_context], picked[num_context:]
        else:
            n_t = min(num_targets, avail.size)
            if n_t < max(num_context, 1):
                raise NPInputError(f"split {split!r} has too few pairs ({avail.size}) for type {type_index}")
            tgt_ids = avail[rng.choice(avail.size, size=n_t, replace=False)]
            ctx_ids = tgt_ids[rng.choice(n_t, size=num_context, replace=False)]
        ctx, tgt = pool.ordered(ctx_ids, type_index), pool.ordered(tgt_ids, type_index)
        if self.flip_prob > 0:
            # noise is drawn per shown pair, identically for a pair shown as context and as target
            flips = rng.random(len(tgt_ids)) < self.flip_prob
            lookup = dict(zip(tgt_ids.tolist(), flips.tolist(), strict=True))
            tgt = np.where(flips[:, None, None], tgt[:, ::-1], tgt)
            cf = np.array(
                [lookup.get(i, bool(rng.random() < self.flip_prob)) for i in ctx_ids.tolist()], dtype=bool
            )
            ctx = np.where(cf[:, None, None], ctx[:, ::-1], ctx) if len(ctx_ids) else ctx
        return Episode(np.ascontiguousarray(ctx), np.ascontiguousarray(tgt), type_index, ctx_ids, tgt_ids)


# -- batch datasets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingPlan:
    """How training episodes are drawn (a view of the relevant :class:`NPTrainingConfig` fields)."""

    batch_episodes: int
    num_targets: int
    max_context: int
    context_per_batch: bool = False
    disjoint: bool = False
    type_indices: tuple[int, ...] = (0,)
    type_balanced: bool = False


class TrainingBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item ``i`` is the ``i``-th :class:`EpisodeBatch` of one epoch.

    Episode ``j`` of batch ``i`` is drawn from :func:`episode_rng` keyed by
    ``(seed, split, epoch, i * batch_episodes + j)``: fresh every epoch, reproducible, and identical
    whatever the number of DataLoader workers.
    """

    def __init__(
        self,
        source: EpisodeSource,
        plan: SamplingPlan,
        *,
        seed: int,
        epoch: int,
        num_batches: int,
        split: str = "train",
        start: int = 0,
    ) -> None:
        self.source, self.plan, self.seed, self.epoch, self.split = source, plan, seed, epoch, split
        self.num_batches, self.start = num_batches, start

    def __len__(self) -> int:
        return self.num_batches - self.start

    def episodes(self, i: int) -> list[Episode]:
        """The episodes of batch ``i`` (absolute index within the epoch)."""
        p = self.plan
        brng = episode_rng(self.seed, self.split, _TAG_BATCH, self.epoch, i)
        batch_m = int(brng.integers(0, p.max_context + 1))
        types = np.array(p.type_indices)
        if p.type_balanced:
            balanced = np.resize(types, p.batch_episodes)
            balanced = balanced[brng.permutation(p.batch_episodes)]
        out = []
        for j in range(p.batch_episodes):
            rng = episode_rng(self.seed, self.split, self.epoch, i * p.batch_episodes + j)
            k = int(balanced[j]) if p.type_balanced else int(types[rng.integers(len(types))])
            m = batch_m if p.context_per_batch else int(rng.integers(0, p.max_context + 1))
            out.append(self.source.sample_episode(rng, self.split, k, m, p.num_targets, p.disjoint))
        return out

    def __getitem__(self, i: int) -> EpisodeBatch:
        return collate(self.episodes(self.start + i))


def validation_episodes(
    source: EpisodeSource,
    *,
    seed: int,
    n: int,
    max_context: int,
    num_targets: int,
    type_indices: Sequence[int],
    split: str = "val",
) -> list[Episode]:
    """The fixed validation set: ``n`` episodes with ``m = i mod (max_context + 1)``, targets disjoint
    from the context, types drawn uniformly from ``type_indices``."""
    out = []
    for i in range(n):
        rng = episode_rng(seed, split, _TAG_VAL, i)
        k = int(type_indices[rng.integers(len(type_indices))])
        out.append(source.sample_episode(rng, split, k, i % (max_context + 1), num_targets, True))
    return out


def evaluation_episodes(
    source: EpisodeSource,
    *,
    seed: int,
    split: str,
    type_index: int,
    num_context: int,
    n: int,
    num_targets: int,
) -> list[Episode]:
    """``n`` evaluation episodes of one type and context size; context and targets disjoint. Keyed by
    ``(seed, split, type, m, i)``, so every model is scored on identical episodes."""
    return [
        source.sample_episode(
            episode_rng(seed, split, _TAG_EVAL, type_index, num_context, i),
            split,
            type_index,
            num_context,
            num_targets,
            True,
        )
        for i in range(n)
    ]


def worker_init_fn(worker_id: int) -> None:
    """Seed Python/NumPy in a DataLoader worker from torch's per-worker seed (episodes themselves use
    :func:`episode_rng`, so this only guards third-party code that uses global RNGs)."""
    import random

    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)
