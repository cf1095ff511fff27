"""Real-text NP-BTL tasks: pairs from HH-RLHF and UltraFeedback, split by prompt, labelled by types.

Spec ``np-alignment.md`` §5c. All pairs are pooled and assigned to a split by
``sha256(prompt) mod 10`` (0-7 train, 8 validation, 9 test), so the split is by prompt and does not
depend on file order. Each task names its user types (see :mod:`personalign.np.text_users`) and the
sources it draws pairs from:

* ``hh_flip``: {faithful, harmless_contrarian} on HH helpful + harmless (agree on helpful, conflict
  on harmless);
* ``length``: {concise, detailed} on all sources (every defined pair conflicts);
* ``mix4``: all four types on all sources, each episode restricted to its type's defined pairs;
* ``uf``: {concise, detailed} on UltraFeedback only (a small-pool variant).

Each split becomes a :class:`~personalign.np.episodes.PreferencePool` (pair features + one label row
per type) and the splits together a :class:`~personalign.np.episodes.PoolEpisodeSource` that the
episodic trainer and evaluator consume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from personalign.data.preferences import load_hh_rlhf, load_ultrafeedback, prompt_split
from personalign.data.types import PreferencePair
from personalign.np.config import NPModelConfig, NPTrainingConfig
from personalign.np.episodes import PoolEpisodeSource, PreferencePool
from personalign.np.features import TextFeatures, TextFeaturizer
from personalign.np.text_users import SOURCES, TextPair, get_user_type
from personalign.registry import Registry

SPLITS = ("train", "val", "test")


def split_of(prompt: str) -> str:
    """``train`` (``sha256(prompt) mod 10`` in 0-7), ``val`` (8) or ``test`` (9); the data layer's rule."""
    return prompt_split(prompt)


@dataclass(frozen=True)
class TextTask:
    """A real-text task: its user types and the sources its pairs come from."""

    name: str
    types: tuple[str, ...]
    sources: tuple[str, ...]
    description: str = ""

    def __post_init__(self) -> None:
        for t in self.types:
            get_user_type(t)
        for s in self.sources:
            if s not in SOURCES:
                raise ValueError(f"task {self.name}: unknown source {s!r}; available: {', '.join(SOURCES)}")


TEXT_TASKS: Registry[TextTask] = Registry("text task")
for _task in (
    TextTask(
        "hh_flip",
        ("faithful", "harmless_contrarian"),
        ("helpful", "harmless"),
        "faithful vs harmless-contrarian on HH-RLHF (agree on helpful, conflict on harmless)",
    ),
    TextTask(
        "length",
        ("concise", "detailed"),
        ("helpful", "harmless", "uf"),
        "concise vs detailed on HH-RLHF + UltraFeedback (every defined pair conflicts)",
    ),
    TextTask(
        "mix4",
        ("faithful", "harmless_contrarian", "concise", "detailed"),
        ("helpful", "harmless", "uf"),
        "all four simulated types on HH-RLHF + UltraFeedback",
    ),
    TextTask("uf", ("concise", "detailed"), ("uf",), "concise vs detailed on the UltraFeedback sample only"),
    TextTask(
        "style4",
        ("concise", "detailed", "inquisitive", "assertive"),
        ("helpful", "harmless", "uf"),
        "four measurable style types (length, asking a question) on HH-RLHF + UltraFeedback",
    ),
):
    TEXT_TASKS.register(_task.name, _task, help=_task.description)


def get_text_task(name: str) -> TextTask:
    """The task registered as ``name`` (aliases: ``hh`` = ``hh_flip``)."""
    return TEXT_TASKS.get({"hh": "hh_flip"}.get(name, name))


# -- loading ---------------------------------------------------------------------------------------


def clean_pairs(pairs: Iterable[TextPair]) -> list[TextPair]:
    """Drop pairs with empty or identical responses and duplicate ids; sort by id (order-free)."""
    seen: dict[str, TextPair] = {}
    for p in pairs:
        if not p.a.strip() or not p.b.strip() or p.a.strip() == p.b.strip():
            continue
        seen.setdefault(p.pair_id, p)
    return [seen[k] for k in sorted(seen)]


def text_pairs_from_preferences(pairs: Iterable[PreferencePair]) -> list[TextPair]:
    """Convert the data layer's :class:`~personalign.data.types.PreferencePair` records.

    Uses ``metadata["subset"]`` (``helpful``/``harmless``/``uf``) as the source, ``metadata["tie"]``
    and ``metadata["pair_id"]`` (content hash, independent of file order).
    """
    out = []
    for n, p in enumerate(pairs):
        meta = p.metadata
        source = meta.get("subset")
        if source not in SOURCES:
            raise ValueError(f"pair {n}: metadata 'subset' is {source!r}; expected one of {SOURCES}")
        pid = f"{source}:{meta.get('pair_id')}" if meta.get("pair_id") else f"{source}:{n}"
        out.append(
            TextPair(
                pid, p.prompt, p.chosen.strip(), p.rejected.strip(), source, bool(meta.get("tie", False))
            )
        )
    return out


def load_text_pairs(data_dir: str | Path | None = None, sources: Sequence[str] = SOURCES) -> list[TextPair]:
    """All real-text pairs of ``sources`` from the data layer (HH-RLHF test + UltraFeedback sample),
    cleaned and sorted by id, so the result does not depend on file order."""
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}; available: {', '.join(SOURCES)}")
    pairs: list[PreferencePair] = []
    hh = [s for s in sources if s in ("helpful", "harmless")]
    if hh:
        pairs += list(load_hh_rlhf(data_dir, subsets=hh))
    if "uf" in sources:
        pairs += list(load_ultrafeedback(data_dir))
    return clean_pairs(text_pairs_from_preferences(pairs))


# -- labelled pools --------------------------------------------------------------------------------


def label_matrix(pairs: Sequence[TextPair], types: Sequence[str]) -> np.ndarray:
    """``(K, n)`` int8 labels of ``pairs`` under ``types`` in :class:`PreferencePool` convention:
    ``0`` = the type prefers ``a`` (the dataset's chosen), ``1`` = ``b``, ``-1`` = undefined."""
    out = np.full((len(types), len(pairs)), -1, dtype=np.int8)
    for k, name in enumerate(types):
        t = get_user_type(name)
        for i, p in enumerate(pairs):
            lab = t.label(p)
            if lab is not None:
                out[k, i] = 0 if lab == "a" else 1
    return out


def featurize_pairs(
    pairs: Sequence[TextPair],
    featurizer: TextFeaturizer,
    *,
    cached: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> TextFeatures:
    """Embed ``pairs`` (all splits at once, so the cache holds one table per pair set)."""
    triples = [(p.prompt, p.a, p.b) for p in pairs]
    if cached:
        return featurizer.featurize_cached(triples, progress=progress)
    return featurizer.featurize(triples, progress=progress)


@dataclass
class TextSplit:
    """One split of a task: its pairs (id order) and the :class:`PreferencePool` built from them."""

    pairs: list[TextPair]
    pool: PreferencePool


def build_splits(task: TextTask, pairs: Sequence[TextPair], feats: TextFeatures) -> dict[str, TextSplit]:
    """Split ``pairs`` (featurized as ``feats``, same order) into train/val/test pools of ``task``.

    Pairs on which none of the task's types is defined are left out.
    """
    if len(pairs) != len(feats):
        raise ValueError(f"{len(pairs)} pairs but {len(feats)} feature rows")
    out = {}
    for split in SPLITS:
        idx = [i for i, p in enumerate(pairs) if p.source in task.sources and split_of(p.prompt) == split]
        labels = label_matrix([pairs[i] for i in idx], task.types)
        keep = np.asarray(idx, dtype=np.int64)[(labels >= 0).any(axis=0)] if idx else np.zeros(0, np.int64)
        fa, fb = feats.pair_features(keep)
        out[split] = TextSplit(
            pairs=[pairs[i] for i in keep],
            pool=PreferencePool(np.stack([fa, fb], axis=1), labels[:, (labels >= 0).any(axis=0)]),
        )
    return out


def episode_source(
    splits: Mapping[str, TextSplit], task: TextTask, flip_prob: float = 0.0
) -> PoolEpisodeSource:
    """The trainer's :class:`~personalign.np.episodes.EpisodeSource` over a task's splits."""
    return PoolEpisodeSource({k: v.pool for k, v in splits.items()}, task.types, flip_prob=flip_prob)


# -- registry entries for `personalign np train/eval/score` ------------------------------------------


@dataclass(frozen=True)
class TextNPTask:
    """An :class:`~personalign.np.tasks.NPTask` over a :class:`TextTask` (spec §2-§5c defaults).

    Task options (``build_source`` / ``featurizer``): ``embedder`` (default ``minilm``),
    ``length_feature`` (default false), ``flip_prob`` (annotator noise, default 0).
    """

    text_task: str
    eval_episodes: int = 300
    eval_targets: int = 20

    @property
    def name(self) -> str:
        return self.text_task

    @property
    def description(self) -> str:
        return get_text_task(self.text_task).description + " (simulated users on real text)"

    def featurizer(self, **options: object) -> TextFeaturizer:
        from personalign.embed.factory import get_embedder
        from personalign.np.features import FeaturizerConfig

        emb = get_embedder(str(options.get("embedder", "minilm")))
        return TextFeaturizer(
            emb, FeaturizerConfig(length_feature=bool(options.get("length_feature", False)))
        )

    def build_source(
        self, *, seed: int = 0, data_dir: Path | None = None, **options: object
    ) -> PoolEpisodeSource:
        task = get_text_task(self.text_task)
        fz = self.featurizer(**options)
        pairs = load_text_pairs(data_dir, task.sources)
        feats = featurize_pairs(pairs, fz)
        feats.check()
        return episode_source(
            build_splits(task, pairs, feats), task, flip_prob=float(options.get("flip_prob", 0.0))
        )

    def model_config(self, kind: str, feature_dim: int) -> NPModelConfig:
        return NPModelConfig(kind=kind, feature_dim=feature_dim, hidden=256, pair_encoder_layers=1)

    def training_config(self, **overrides: object) -> NPTrainingConfig:
        base = NPTrainingConfig(
            lr=3e-4, epochs=6, episodes_per_epoch=4096, type_balanced=True, val_episodes=256
        )
        return replace(base, **overrides)  # type: ignore[arg-type]


HH_TASK = TextNPTask("hh_flip")
UF_TASK = TextNPTask("uf")
LENGTH_TASK = TextNPTask("length")
MIX4_TASK = TextNPTask("mix4")
STYLE4_TASK = TextNPTask("style4")
