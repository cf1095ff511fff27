"""Benchmark 2: NP-BTL on real text with simulated pluralistic users (spec ``np-alignment.md`` §5c).

For one text task (:mod:`personalign.np.text_tasks`) this trains, on the same episodes:

* ``btl``: one unconditional BTL model on every type's episodes (pooled, "mixed");
* ``np-btl``: the NP-BTL model;
* ``mixture-btl``: the discrete-latent conditional model (``K`` BT heads, Bayes posterior; ours);
* ``oracle:<type>``: one BTL model per type, trained on that type's labels only (the bar's reference);
* ``oracle-mixture``: no model of its own: Bayes' rule over the calibrated oracles given the context
  (:mod:`personalign.np.oracle_mixture`), a reference for what conditioning on these features reaches;

then scores every model on identical test episodes per type and context size ``m`` (targets disjoint
from the context), and writes ``text_<task>.json``, ``text_<task>.md`` and ``text_<task>.png``.
The users are simulated labelling functions on real texts, not people; every report says so.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from personalign.np.config import NPModelConfig, NPTrainingConfig
from personalign.np.episodes import Episode, EpisodeSource, evaluation_episodes
from personalign.np.evaluate import episode_accuracies, seed_interval, target_correctness
from personalign.np.features import FeaturizerConfig, TextFeaturizer
from personalign.np.models import RewardModel, build_model
from personalign.np.oracle_mixture import calibration_scales, identification_rates, mixture_accuracies
from personalign.np.text_tasks import (
    TextSplit,
    build_splits,
    episode_source,
    featurize_pairs,
    get_text_task,
    load_text_pairs,
)
from personalign.np.trainer import NPTrainer

ORACLE_MIXTURE = "oracle-mixture"
"""Name of the posterior mixture of the oracles in the results (no training of its own)."""

SIMULATED_NOTE = (
    "Texts and dataset labels are real (HH-RLHF test splits, UltraFeedback sample); the users are "
    "simulated labelling functions, not people."
)


@dataclass(frozen=True)
class TextBenchConfig:
    """Settings of the real-text benchmark.

    Attributes:
        task: text task name (``hh_flip``, ``length``, ``mix4``, ``uf``; ``hh`` = ``hh_flip``).
        embedder: embedder name for :func:`personalign.embed.factory.get_embedder`.
        length_feature: append ``log(1 + w(y))`` to ``e(y)`` (a column feature dropout never touches).
        context_sizes: the ``m`` values reported.
        eval_episodes: test episodes per type and ``m`` (spec: 300).
        eval_targets: targets per test episode (spec: 20).
        eval_seed: keys the test episodes (identical for every model).
        seed: training seed (model init and episodes).
        hidden: width ``h``.
        feature_dropout: dropout on the input features in training (see ``NPModelConfig``); 0.3
            because without it every model memorises the ~4.6k training pairs within ~100 steps and
            early stopping keeps an undertrained model (docs/results-np.md).
        pooling: context pooling of NP-BTL, ``"sum"`` (spec) or ``"mean"``.
        latent: the latent-variable NP-BTL (Gaussian ``z``, KL weight ``beta_kl``).
        beta_kl: KL weight of the latent variant.
        weight_decay: AdamW weight decay.
        lr: AdamW learning rate.
        epochs: training epochs (fresh episodes each).
        episodes_per_epoch: episodes per epoch (``None``: one per training pair).
        batch_episodes: episodes per step.
        disjoint_train_context: draw training contexts disjoint from the episode's targets, so the loss
            is only on pairs the context does not contain (spec [ours] flag; default: context ⊂ targets).
        max_context: ``C_max`` (training episodes get ``max(20, C_max)`` targets, the context a subset).
        eval_every: validation period in steps.
        patience: early-stopping patience in validations.
        mixture_components: heads ``K`` of the ``mixture-btl`` model trained beside NP-BTL (0: skip it).
        oracles: also train one BTL oracle per type.
        oracle_epochs: epochs of each oracle (``None``: ``epochs``).
        val_episodes: size of the fixed validation set.
        num_threads: torch CPU threads.
    """

    task: str = "mix4"
    embedder: str = "minilm"
    length_feature: bool = False
    context_sizes: tuple[int, ...] = (0, 1, 3, 5, 10)
    eval_episodes: int = 300
    eval_targets: int = 20
    eval_seed: int = 12345
    seed: int = 0
    hidden: int = 256
    feature_dropout: float = 0.3
    pooling: str = "sum"
    latent: bool = False
    beta_kl: float = 0.1
    weight_decay: float = 0.01
    lr: float = 3e-4
    epochs: int = 20
    episodes_per_epoch: int | None = None
    batch_episodes: int = 64
    max_context: int = 10
    disjoint_train_context: bool = False
    eval_every: int = 50
    patience: int = 10
    mixture_components: int = 4
    oracles: bool = True
    oracle_epochs: int | None = None
    val_episodes: int = 256
    num_threads: int | None = None

    def model_config(self, kind: str, feature_dim: int) -> NPModelConfig:
        return NPModelConfig(
            kind=kind,
            feature_dim=feature_dim,
            hidden=self.hidden,
            pair_encoder_layers=1,
            feature_dropout=self.feature_dropout,
            feature_dropout_keep_last=int(self.length_feature),
            pooling=self.pooling,  # type: ignore[arg-type]
            latent=self.latent and kind == "np-btl",
            beta_kl=self.beta_kl,
            num_components=max(1, self.mixture_components),
        )

    def training_config(
        self,
        n_train_pairs: int,
        type_indices: tuple[int, ...] | None = None,
        checkpoint_dir: str | None = None,
    ) -> NPTrainingConfig:
        return NPTrainingConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_episodes=self.batch_episodes,
            num_targets=20 if self.disjoint_train_context else max(20, self.max_context),
            disjoint_train_context=self.disjoint_train_context,
            max_context=self.max_context,
            type_balanced=type_indices is None,
            type_indices=type_indices,
            epochs=self.epochs if type_indices is None else (self.oracle_epochs or self.epochs),
            episodes_per_epoch=self.episodes_per_epoch or max(self.batch_episodes, n_train_pairs),
            eval_every=self.eval_every,
            val_episodes=self.val_episodes,
            patience=self.patience,
            seed=self.seed,
            device="auto",
            num_threads=self.num_threads,
            checkpoint_dir=checkpoint_dir,
        )


@dataclass
class TextData:
    """A featurized task: its splits, the episode source and the featurizer used."""

    splits: dict[str, TextSplit]
    source: EpisodeSource
    featurizer: TextFeaturizer
    types: tuple[str, ...]
    identical_fraction: float
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def prepare_text_task(
    task_name: str,
    featurizer: TextFeaturizer,
    *,
    data_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TextData:
    """Load every pair of the task's sources, featurize them (cached) and build the episode source."""
    task = get_text_task(task_name)
    pairs = load_text_pairs(data_dir, task.sources)
    feats = featurize_pairs(pairs, featurizer, progress=progress)
    feats.check()
    splits = build_splits(task, pairs, feats)
    counts = {
        s: {t: int((sp.pool.labels[k] >= 0).sum()) for k, t in enumerate(task.types)}
        | {"pairs": len(sp.pairs)}
        for s, sp in splits.items()
    }
    return TextData(
        splits, episode_source(splits, task), featurizer, task.types, feats.identical_fraction(), counts
    )


def fill_cache(
    task_name: str,
    embedder: Any,
    *,
    length_feature: bool = False,
    data_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Embed every pair of a task once (fills the embedder cache and the task's feature table)."""
    fz = TextFeaturizer(embedder, FeaturizerConfig(length_feature=length_feature))
    data = prepare_text_task(task_name, fz, data_dir=data_dir, progress=progress)
    return {
        "task": task_name,
        "counts": data.counts,
        "identical_fraction": data.identical_fraction,
        "embedder": embedder.model_id,
    }


def summarize(acc: np.ndarray) -> dict[str, Any]:
    """``{mean, ci: [lo, hi], n}`` with the spec's ``±1.96 sd/sqrt(E)`` interval over episodes."""
    mean = float(acc.mean())
    half = float(1.96 * acc.std(ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else 0.0
    return {"mean": mean, "ci": [mean - half, mean + half], "n": len(acc)}


def accuracy_grid(
    model: RewardModel,
    data: TextData,
    cfg: TextBenchConfig,
    split: str = "test",
    context_sizes: Sequence[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{type: {m: summary}}`` for one model."""
    return _grid(
        lambda eps: episode_accuracies(model, eps, seed=cfg.eval_seed), data, cfg, split, context_sizes
    )


def source_accuracy(
    model: RewardModel,
    data: TextData,
    cfg: TextBenchConfig,
    num_context: int,
    split: str = "test",
) -> dict[str, dict[str, float]]:
    """``{type: {source: accuracy}}`` over the targets of the same test episodes as the grid at context
    size ``num_context``, grouped by the source of each target pair (``helpful``, ``harmless``, ``uf``).

    It shows where the types conflict: ``faithful`` and ``harmless_contrarian`` agree on helpful and UF
    pairs and disagree on every harmless one, so only the harmless column can reward conditioning.
    """
    sources = np.array([p.source for p in data.splits[split].pairs])
    out: dict[str, dict[str, float]] = {}
    for k, t in enumerate(data.types):
        episodes = _test_episodes(data, cfg, split, k, num_context)
        scores = np.concatenate(target_correctness(model, episodes, seed=cfg.eval_seed))
        of = sources[np.concatenate([e.target_ids for e in episodes])]
        out[t] = {src: float(scores[of == src].mean()) for src in sorted(set(of.tolist()))}
    return out


def oracle_mixture_grid(
    oracles: Sequence[RewardModel],
    data: TextData,
    cfg: TextBenchConfig,
    split: str = "test",
    context_sizes: Sequence[int] | None = None,
) -> dict[str, dict[str, Any]]:
    """``{type: {m: summary}}`` of the posterior mixture of the per-type oracles (one per type, in
    ``data.types`` order; :mod:`personalign.np.oracle_mixture`), each oracle calibrated on the
    validation split, scored on the same episodes as the models."""
    scales = _calibrated_scales(oracles, data)
    return _grid(lambda eps: mixture_accuracies(oracles, eps, scales), data, cfg, split, context_sizes)


def _calibrated_scales(oracles: Sequence[RewardModel], data: TextData) -> np.ndarray:
    """One temperature per oracle (one oracle per type, in ``data.types`` order), fitted on the
    validation split."""
    if len(oracles) != len(data.types):
        raise ValueError(f"need one oracle per type ({len(data.types)}), got {len(oracles)}")
    return calibration_scales(oracles, data.splits["val"].pool)


def identification_grid(
    oracles: Sequence[RewardModel],
    data: TextData,
    cfg: TextBenchConfig,
    split: str = "test",
    context_sizes: Sequence[int] | None = None,
) -> dict[str, dict[str, float]]:
    """``{type: {m: rate}}``: how often Bayes' rule over the calibrated oracles names the user's type
    from ``m`` context pairs (:func:`~personalign.np.oracle_mixture.identification_rates`), on the
    same test episodes as the grid: a reference for how well ``m`` pairs tell the types apart on these
    features (not a strict bound: rewards learnt better than the oracles could tell them apart better)."""
    scales = _calibrated_scales(oracles, data)
    grid = _grid(
        lambda eps: identification_rates(oracles, eps, eps[0].type_index, scales),
        data,
        cfg,
        split,
        context_sizes,
    )
    return {t: {m: cell["mean"] for m, cell in row.items()} for t, row in grid.items()}


def _test_episodes(
    data: TextData, cfg: TextBenchConfig, split: str, type_index: int, m: int
) -> list[Episode]:
    """The fixed evaluation episodes of one (type, m) cell: identical for every model and diagnostic."""
    return evaluation_episodes(
        data.source,
        seed=cfg.eval_seed,
        split=split,
        type_index=type_index,
        num_context=m,
        n=cfg.eval_episodes,
        num_targets=cfg.eval_targets,
    )


def _grid(
    score: Callable[[list[Episode]], np.ndarray],
    data: TextData,
    cfg: TextBenchConfig,
    split: str,
    context_sizes: Sequence[int] | None,
) -> dict[str, dict[str, Any]]:
    sizes = cfg.context_sizes if context_sizes is None else context_sizes
    out: dict[str, dict[str, Any]] = {}
    for k, t in enumerate(data.types):
        out[t] = {}
        for m in sizes:
            episodes = _test_episodes(data, cfg, split, k, m)
            out[t][str(m)] = summarize(score(episodes))
    return out


def train_model(
    kind: str,
    data: TextData,
    cfg: TextBenchConfig,
    *,
    type_indices: tuple[int, ...] | None = None,
    out_dir: Path | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[RewardModel, NPTrainer]:
    """Train one model of ``kind`` on the task's episodes (``type_indices``: restrict to those types)."""
    n_train = len(data.splits["train"].pairs)
    mcfg = cfg.model_config(kind, data.source.feature_dim)
    tcfg = cfg.training_config(n_train, type_indices, str(out_dir / "checkpoints") if out_dir else None)
    model = build_model(mcfg, seed=cfg.seed)
    trainer = NPTrainer(model, tcfg).fit(data.source, progress=progress)
    return trainer.model, trainer


def run_text_bench(
    cfg: TextBenchConfig,
    out_dir: str | Path,
    *,
    embedder: Any = None,
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress_factory: Callable[[str], Callable[[dict[str, Any]], None]] | None = None,
) -> dict[str, Any]:
    """Train BTL, NP-BTL and the per-type oracles on ``cfg.task``; evaluate; write JSON/MD/PNG."""
    from personalign.embed.factory import get_embedder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    emb = embedder if embedder is not None else get_embedder(cfg.embedder)
    fz = TextFeaturizer(emb, FeaturizerConfig(length_feature=cfg.length_feature))
    data = prepare_text_task(cfg.task, fz, data_dir=data_dir)
    log(f"{cfg.task}: {data.counts} (identical embeddings: {data.identical_fraction:.3%})")
    results: dict[str, Any] = {"accuracy": {}, "by_source": {}, "train_seconds": {}, "steps": {}}
    models: dict[str, RewardModel] = {}
    jobs: list[tuple[str, str, tuple[int, ...] | None]] = [("btl", "btl", None), ("np-btl", "np-btl", None)]
    if cfg.mixture_components:
        jobs.append(("mixture-btl", "mixture-btl", None))
    if cfg.oracles:
        jobs += [(f"oracle:{t}", "btl", (k,)) for k, t in enumerate(data.types)]
    for name, kind, types in jobs:
        t0 = time.perf_counter()
        hook = progress_factory(name) if progress_factory else None
        model, trainer = train_model(
            kind, data, cfg, type_indices=types, out_dir=out / name.replace(":", "_"), progress=hook
        )
        results["train_seconds"][name] = round(time.perf_counter() - t0, 1)
        results["steps"][name] = trainer.step_
        models[name] = model
        model.save(
            out / name.replace(":", "_"),
            {
                "task": cfg.task,
                "embedder": cfg.embedder,
                "embedder_id": emb.model_id,
                "types": list(data.types),
                "featurizer": asdict(fz.config),
            },
        )
        sizes = cfg.context_sizes if model.is_conditional else (0,)
        grid = accuracy_grid(model, data, cfg, context_sizes=sizes)
        if not model.is_conditional:  # context-free: the same accuracy at every m
            grid = {t: {str(m): v["0"] for m in cfg.context_sizes} for t, v in grid.items()}
        results["accuracy"][name] = grid
        lo, hi = cfg.context_sizes[0], cfg.context_sizes[-1]
        first = source_accuracy(model, data, cfg, lo)
        last = source_accuracy(model, data, cfg, hi) if model.is_conditional else first
        results["by_source"][name] = {str(lo): first, str(hi): last}
        log(
            f"  {name}: {results['train_seconds'][name]}s, {trainer.step_} steps, "
            + ", ".join(
                f"{t}@{cfg.context_sizes[-1]}={v[str(cfg.context_sizes[-1])]['mean']:.3f}"
                for t, v in grid.items()
            )
        )
    if cfg.oracles:
        t0 = time.perf_counter()
        oracles = [models[f"oracle:{t}"] for t in data.types]
        results["accuracy"][ORACLE_MIXTURE] = oracle_mixture_grid(oracles, data, cfg)
        results["train_seconds"][ORACLE_MIXTURE] = 0.0
        results["identification"] = identification_grid(oracles, data, cfg)
        log(f"  {ORACLE_MIXTURE}: {time.perf_counter() - t0:.1f}s to evaluate")
    doc = {
        "task": cfg.task,
        "note": SIMULATED_NOTE,
        "types": list(data.types),
        "context_sizes": list(cfg.context_sizes),
        "embedder": emb.model_id,
        "length_feature": cfg.length_feature,
        "counts": data.counts,
        "identical_fraction": data.identical_fraction,
        "config": {**asdict(cfg), "context_sizes": list(cfg.context_sizes)},
        **results,
    }
    doc["bar"] = check_bar(doc)
    stem = f"text_{cfg.task}" + ("_len" if cfg.length_feature else "")
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=2))
    (out / f"{stem}.md").write_text(markdown_table(doc))
    plot_text(doc, out / f"{stem}.png")
    return doc


def check_bar(doc: dict[str, Any]) -> dict[str, Any]:
    """The issue's bar: NP-BTL at the largest ``m`` within 3 points of each type's oracle, and above BTL."""
    acc = doc["accuracy"]
    m = str(doc["context_sizes"][-1])
    out: dict[str, Any] = {}
    for t in doc["types"]:
        np_acc = acc["np-btl"][t][m]["mean"]
        row = {"np_btl": np_acc, "btl": acc["btl"][t][m]["mean"]}
        if f"oracle:{t}" in acc:
            row["oracle"] = acc[f"oracle:{t}"][t][m]["mean"]
            row["within_3pts_of_oracle"] = bool(np_acc >= row["oracle"] - 0.03)
        if ORACLE_MIXTURE in acc:
            row["oracle_mixture"] = acc[ORACLE_MIXTURE][t][m]["mean"]
        row["above_btl"] = bool(np_acc > row["btl"])
        if "mixture-btl" in acc:
            mix = acc["mixture-btl"][t][m]["mean"]
            row["mixture_btl"] = mix
            if "oracle" in row:
                row["mixture_within_3pts_of_oracle"] = bool(mix >= row["oracle"] - 0.03)
            row["mixture_above_btl"] = bool(mix > row["btl"])
        out[t] = row
    return out


def aggregate_seeds(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Combine the per-seed documents of one task and settings: for every model, type and ``m`` the
    mean over training seeds with a 95 % Student-t interval over seeds, and the bar on the means."""
    if not docs:
        raise ValueError("no per-seed results to aggregate")
    first = docs[0]
    for d in docs[1:]:
        if (d["task"], d["types"], d["context_sizes"], d["length_feature"]) != (
            first["task"],
            first["types"],
            first["context_sizes"],
            first["length_feature"],
        ):
            raise ValueError("per-seed results of different tasks or settings cannot be aggregated")
    acc: dict[str, Any] = {}
    for model in first["accuracy"]:
        acc[model] = {}
        for t in first["types"]:
            acc[model][t] = {}
            for m in map(str, first["context_sizes"]):
                cell = seed_interval([d["accuracy"][model][t][m]["mean"] for d in docs])
                acc[model][t][m] = {"mean": cell.mean, "ci": list(cell.ci95), "n": cell.n}
    agg = {
        **{k: first[k] for k in ("task", "note", "types", "context_sizes", "embedder", "length_feature")},
        **{k: first[k] for k in ("counts", "identical_fraction")},
        "seeds": [d["config"]["seed"] for d in docs],
        "accuracy": acc,
        "train_seconds": {k: round(float(np.mean([d["train_seconds"][k] for d in docs])), 1) for k in acc},
        "interval": "95% Student-t over training seeds",
    }
    for key in ("by_source", "identification"):
        if all(key in d for d in docs):
            agg[key] = _mean_nested([d[key] for d in docs])
    agg["bar"] = check_bar(agg)
    agg["bar_per_seed"] = {str(d["config"]["seed"]): d["bar"] for d in docs}
    return agg


def _mean_nested(trees: Sequence[Any]) -> Any:
    """Element-wise mean of equally shaped nested dicts of numbers (one per seed)."""
    if isinstance(trees[0], dict):
        return {k: _mean_nested([tree[k] for tree in trees]) for k in trees[0]}
    return float(np.mean(trees))


def write_aggregate(agg: dict[str, Any], stem: Path) -> None:
    """Write an :func:`aggregate_seeds` result as ``stem.json``, ``stem.md`` and ``stem.png``."""
    stem.with_suffix(".json").write_text(json.dumps(agg, indent=2))
    stem.with_suffix(".md").write_text(markdown_table(agg))
    plot_text(agg, stem.with_suffix(".png"))


def markdown_table(doc: dict[str, Any]) -> str:
    """Accuracy (%) by type and context size, one row per model, with 95% CIs over episodes."""
    sizes = [str(m) for m in doc["context_sizes"]]
    lines = [
        f"### Task `{doc['task']}`" + (" (+ length feature)" if doc.get("length_feature") else ""),
        "",
        f"_{doc['note']}_ Embedder `{doc['embedder']}`; {doc['counts']['test']['pairs']} test pairs; "
        f"identical chosen/rejected embeddings: {doc['identical_fraction']:.2%}.",
        "",
    ]
    if "seeds" in doc:
        lines += [f"Training seeds {doc['seeds']}; ± = {doc['interval']}.", ""]
    for t in doc["types"]:
        lines += [
            f"**{t}**",
            "",
            "| model | " + " | ".join(f"m={m}" for m in sizes) + " | train s |",
            "|---|" + "---|" * (len(sizes) + 1),
        ]
        for name, grid in doc["accuracy"].items():
            if name.startswith("oracle:") and name != f"oracle:{t}":
                continue
            cells = []
            for m in sizes:
                s = grid[t][m]
                cells.append(f"{100 * s['mean']:.1f} ± {100 * (s['ci'][1] - s['mean']):.1f}")
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {doc['train_seconds'][name]} |")
        lines.append("")
    oracles = [n for n in doc["accuracy"] if n.startswith("oracle:")]
    if oracles:
        lines += [
            "Oracle cross-table (accuracy % of each oracle on each type):",
            "",
            "| oracle | " + " | ".join(doc["types"]) + " |",
            "|---|" + "---|" * len(doc["types"]),
        ]
        for n in oracles:
            row = [f"{100 * doc['accuracy'][n][t]['0']['mean']:.1f}" for t in doc["types"]]
            lines.append(f"| {n} | " + " | ".join(row) + " |")
        lines.append("")
    lines += _source_table(doc)
    if doc.get("identification"):
        ident = doc["identification"]
        lines += [
            "How often Bayes' rule over the calibrated oracles names the user's type from m pairs (%):",
            "",
            "| type | " + " | ".join(f"m={m}" for m in sizes) + " |",
            "|---|" + "---|" * len(sizes),
        ]
        lines += [f"| {t} | " + " | ".join(f"{100 * ident[t][m]:.1f}" for m in sizes) + " |" for t in ident]
        lines.append("")
    m = doc["context_sizes"][-1]
    lines += _bar_table(
        doc,
        f"Bar (NP-BTL at m = {m} within 3 points of the type's oracle, and above BTL):",
        ("NP-BTL", "np_btl", "within_3pts_of_oracle", "above_btl"),
        oracle_mixture=True,
    )
    if any("mixture_btl" in r for r in doc["bar"].values()):
        lines.append("")
        lines += _bar_table(
            doc,
            f"The same bar for `mixture-btl` (discrete latent user type, ours) at m = {m}:",
            ("mixture-btl", "mixture_btl", "mixture_within_3pts_of_oracle", "mixture_above_btl"),
        )
    if any("oracle_mixture" in r for r in doc["bar"].values()):
        lines += [
            "",
            "Oracle mixture: Bayes' rule over the per-type oracles (each calibrated on the validation",
            "split) given the same context (`personalign.np.oracle_mixture`): roughly what conditioning",
            "reaches when every type's reward is learnt as well as its oracle. A reference, not a bound.",
        ]
    lines.append("")
    return "\n".join(lines) + "\n"


def _source_table(doc: dict[str, Any]) -> list[str]:
    """Accuracy (%) by the source of the target pair, at the smallest → largest ``m`` (if recorded)."""
    by_source = doc.get("by_source")
    if not by_source:
        return []
    lo, hi = str(doc["context_sizes"][0]), str(doc["context_sizes"][-1])
    lines = [f"Accuracy (%) by the source of the target pair, m = {lo} → {hi}:", ""]
    for t in doc["types"]:
        sources = sorted({src for grid in by_source.values() for src in grid[lo][t]})
        lines += [f"| {t} | " + " | ".join(sources) + " |", "|---|" + "---|" * len(sources)]
        for name, grid in by_source.items():
            if name.startswith("oracle:") and name != f"oracle:{t}":
                continue
            cells = []
            for src in sources:
                a, b = grid[lo][t].get(src), grid[hi][t].get(src)
                if a is None or b is None:
                    cells.append("–")
                elif a == b:
                    cells.append(f"{100 * a:.1f}")
                else:
                    cells.append(f"{100 * a:.1f} → {100 * b:.1f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _bar_table(
    doc: dict[str, Any], title: str, keys: tuple[str, str, str, str], oracle_mixture: bool = False
) -> list[str]:
    """The bar of one conditional model; ``keys`` = (label, accuracy, within-3-points, above-BTL) keys
    of :func:`check_bar`'s rows."""
    label, value, within_key, above_key = keys
    mix_head, mix_rule = (" oracle mixture |", "---|") if oracle_mixture else ("", "")
    lines = [
        title,
        "",
        f"| type | BTL | {label} | oracle | {label} − oracle | within 3 pts | above BTL |{mix_head}",
        "|---|---|---|---|---|---|---|" + mix_rule,
    ]
    for t, row in doc["bar"].items():
        oracle = row.get("oracle")
        gap = "– | – | "
        if oracle is not None:
            gap = f"{100 * oracle:.1f} | {100 * (row[value] - oracle):+.1f} | "
        within = "–" if oracle is None else ("yes" if row.get(within_key) else "**no**")
        above = "yes" if row[above_key] else "**no**"
        mix = ""
        if oracle_mixture:
            mix = f" {100 * row['oracle_mixture']:.1f} |" if "oracle_mixture" in row else " – |"
        lines.append(
            f"| {t} | {100 * row['btl']:.1f} | {100 * row[value]:.1f} | {gap}{within} | {above} |{mix}"
        )
    return lines


def plot_text(doc: dict[str, Any], path: Path) -> None:
    """Accuracy vs ``m`` per type: NP-BTL with CI band, BTL and the type's oracle as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = doc["types"]
    sizes = doc["context_sizes"]
    fig, axes = plt.subplots(1, len(types), figsize=(3.6 * len(types), 3.2), squeeze=False)
    for ax, t in zip(axes[0], types, strict=True):
        g = doc["accuracy"]["np-btl"][t]
        mean = [100 * g[str(m)]["mean"] for m in sizes]
        lo = [100 * g[str(m)]["ci"][0] for m in sizes]
        hi = [100 * g[str(m)]["ci"][1] for m in sizes]
        ax.plot(sizes, mean, "o-", label="NP-BTL")
        ax.fill_between(sizes, lo, hi, alpha=0.25)
        if "mixture-btl" in doc["accuracy"]:
            mb = [100 * doc["accuracy"]["mixture-btl"][t][str(m)]["mean"] for m in sizes]
            ax.plot(sizes, mb, "^-", color="darkorange", ms=4, label="mixture-btl")
        if ORACLE_MIXTURE in doc["accuracy"]:
            mix = [100 * doc["accuracy"][ORACLE_MIXTURE][t][str(m)]["mean"] for m in sizes]
            ax.plot(sizes, mix, "s--", color="purple", ms=3, label="oracle mixture")
        ax.axhline(100 * doc["accuracy"]["btl"][t]["0"]["mean"], color="grey", ls="--", label="BTL (pooled)")
        if f"oracle:{t}" in doc["accuracy"]:
            ax.axhline(
                100 * doc["accuracy"][f"oracle:{t}"][t]["0"]["mean"], color="green", ls=":", label="oracle"
            )
        ax.set_title(t)
        ax.set_xlabel("context pairs m")
        ax.set_ylim(30, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("target accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"text task {doc['task']}" + (" + length feature" if doc.get("length_feature") else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def bench_config_from(task: str, **overrides: Any) -> TextBenchConfig:
    """A :class:`TextBenchConfig` for ``task`` with keyword overrides (unknown keys are an error)."""
    return replace(TextBenchConfig(task=task), **overrides)


def run_text_benchmark(
    out: Path,
    *,
    seeds: Sequence[int] = (0,),
    quick: bool = False,
    progress: Callable[[str, float, float], None] | None = None,
    task: str = "mix4",
    embedder: str | None = None,
) -> dict[str, Any]:
    """``personalign np bench text``: :func:`run_text_bench` on ``task`` for each seed (folder
    ``out/<task>[/seed<s>]``); if the ``concise``/``detailed`` oracles stay below 80 %, the
    ``length_feature`` variant is run too (spec §5c). ``quick``: hashing features, 1 epoch, 50 episodes."""
    from personalign.embed.factory import get_embedder

    emb_name = embedder or ("hashing" if quick else "minilm")
    emb = get_embedder(emb_name, cache=emb_name != "hashing")
    base = dict(task=task, embedder=emb_name)
    if quick:
        base |= dict(epochs=1, oracle_epochs=1, eval_episodes=50, val_episodes=64, eval_every=20)

    def hook_for(name: str) -> Callable[[dict[str, Any]], None] | None:
        if progress is None:
            return None
        return lambda info: progress(f"{task} {name}", info["step"], info["total"])

    docs: dict[str, Any] = {}
    for seed in seeds:
        folder = Path(out) / task / (f"seed{seed}" if len(seeds) > 1 else "")
        doc = run_text_bench(
            TextBenchConfig(**base, seed=seed), folder, embedder=emb, progress_factory=hook_for
        )
        docs[f"seed{seed}"] = doc
        oracle = [doc["bar"][t].get("oracle", 1.0) for t in ("concise", "detailed") if t in doc["bar"]]
        if oracle and min(oracle) < 0.80:
            cfg = TextBenchConfig(**base, seed=seed, length_feature=True)
            docs[f"seed{seed}+length_feature"] = run_text_bench(
                cfg, folder / "length_feature", embedder=emb, progress_factory=hook_for
            )
    summary = {"task": task, "embedder": emb.model_id, "runs": {k: v["bar"] for k, v in docs.items()}}
    if len(seeds) > 1:
        agg = aggregate_seeds([docs[f"seed{s}"] for s in seeds])
        write_aggregate(agg, Path(out) / f"text_{task}_seeds")
        summary["seeds"] = agg["bar"]
        len_docs = [docs[f"seed{s}+length_feature"] for s in seeds if f"seed{s}+length_feature" in docs]
        if len(len_docs) == len(seeds):
            agg = aggregate_seeds(len_docs)
            write_aggregate(agg, Path(out) / f"text_{task}_len_seeds")
            summary["seeds+length_feature"] = agg["bar"]
    (Path(out) / f"text_{task}_summary.json").write_text(json.dumps(summary, indent=2))
    return summary
