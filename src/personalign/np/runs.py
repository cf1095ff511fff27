"""Run folders: train a registered task into a folder, evaluate a folder, score pairs with it.

Layout of ``DIR`` (all JSON / safetensors, no pickle)::

    config.json          task, task options, model kind, seed, resolved model + training configs
    model.safetensors    final (best-validation) weights;  model.json: config + metadata
    checkpoints/         last.safetensors + last.json (resume), best.safetensors
    history.json         validation curve
    metrics.json/.md     accuracy grid (after ``evaluate_run``), acc_vs_context.png
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from personalign.np.errors import CheckpointError
from personalign.np.evaluate import DEFAULT_CONTEXT_SIZES, GridResult, evaluate_grid
from personalign.np.models import RewardModel, build_model, load_model, resolve_device
from personalign.np.tasks import get_task
from personalign.np.trainer import NPTrainer, ProgressHook

MODEL_NAMES = ("np-btl", "btl", "oracle", "mixture-btl")


def train_run(
    task_name: str,
    out: str | Path,
    *,
    model: str = "np-btl",
    seed: int = 0,
    oracle_type: int | None = None,
    overrides: Mapping[str, Any] | None = None,
    task_options: Mapping[str, Any] | None = None,
    data_dir: Path | None = None,
    resume: bool = False,
    progress: ProgressHook | None = None,
    model_overrides: Mapping[str, Any] | None = None,
) -> NPTrainer:
    """Meta-train ``model`` (``np-btl``, ``mixture-btl``, ``btl`` or ``oracle`` = BTL on type
    ``oracle_type`` only) on task ``task_name`` and write the run folder ``out``. ``overrides``
    replace training-config fields, ``model_overrides`` model-config fields (e.g. ``{"latent": True}``)."""
    if model not in MODEL_NAMES:
        raise ValueError(f"unknown model {model!r}; available: {', '.join(MODEL_NAMES)}")
    task = get_task(task_name)
    topts = dict(task_options or {})
    source = task.build_source(seed=int(topts.pop("data_seed", 0)), data_dir=data_dir, **topts)
    kind = "btl" if model in ("btl", "oracle") else model
    mcfg = task.model_config(kind, source.feature_dim)
    if model_overrides:
        mcfg = replace(mcfg, **dict(model_overrides))
    out = Path(out)
    tcfg = task.training_config(seed=seed, checkpoint_dir=str(out / "checkpoints"), **dict(overrides or {}))
    if model == "oracle":
        if oracle_type is None or not 0 <= oracle_type < len(source.type_names):
            raise ValueError(
                f"--oracle-type must be one of 0..{len(source.type_names) - 1} for the oracle model"
            )
        tcfg = replace(tcfg, type_indices=(oracle_type,))
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "config.json"
    if resume and cfg_path.is_file():
        saved = json.loads(cfg_path.read_text())
        if saved.get("task") != task_name or saved.get("model") != model:
            raise CheckpointError(
                f"{cfg_path}: run is {saved.get('task')}/{saved.get('model')}, not {task_name}/{model}"
            )
    cfg_path.write_text(
        json.dumps(
            {
                "task": task_name,
                "task_options": dict(task_options or {}),
                "model": model,
                "seed": seed,
                "oracle_type": oracle_type,
                "model_config": mcfg.to_dict(),
                "training_config": tcfg.to_dict(),
            },
            indent=2,
        )
    )
    net = build_model(mcfg, seed=seed)
    trainer = NPTrainer(net, tcfg).fit(source, resume=resume, progress=progress)
    meta = {
        "task": task_name,
        "task_options": dict(task_options or {}),
        "model": model,
        "seed": seed,
        "oracle_type": oracle_type,
        "types": list(source.type_names),
        "train_seconds": trainer.train_seconds_,
        "steps": trainer.step_,
        "best_step": trainer.best_step_,
        "best_val_nll": trainer.best_val_nll_,
        "stopped_early": trainer.stopped_early_,
        "device": str(resolve_device(tcfg.device)),
    }
    trainer.model.save(out, metadata=meta)
    (out / "history.json").write_text(json.dumps(trainer.history_, indent=2))
    return trainer


def load_run(folder: str | Path, device: str = "cpu") -> tuple[RewardModel, dict[str, Any]]:
    """The trained model of a run folder and its metadata."""
    return load_model(folder, device=device)


def evaluate_run(
    folder: str | Path,
    *,
    context_sizes: Sequence[int] = DEFAULT_CONTEXT_SIZES,
    episodes: int | None = None,
    seed: int = 0,
    data_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    diagnostics: bool = False,
) -> dict[str, Any]:
    """Evaluate a run folder on its task's test split; write ``metrics.json``, ``metrics.md`` and
    ``acc_vs_context.png``; return the metrics dict (spec §8 shape). With ``diagnostics`` (pool-based
    tasks), also the mixed-context / context-swap accuracies at ``m = 10`` (``metrics["diagnostics"]``)."""
    from personalign.np.plots import plot_accuracy_vs_context

    folder = Path(folder)
    model, meta = load_run(folder)
    task = get_task(meta["task"])
    topts = dict(meta.get("task_options", {}))
    source = task.build_source(seed=int(topts.pop("data_seed", 0)), data_dir=data_dir, **topts)
    t0 = time.perf_counter()
    grid = evaluate_grid(
        model,
        source,
        context_sizes=context_sizes,
        episodes=episodes or task.eval_episodes,
        num_targets=task.eval_targets,
        seed=seed,
        progress=progress,
    )
    metrics = {
        "task": meta["task"],
        "model": meta["model"],
        "seed": meta["seed"],
        "embedder": topts.get("embedder"),
        **grid.to_dict(),
        "wall_time_s": meta.get("train_seconds"),
        "eval_seconds": time.perf_counter() - t0,
        "device": meta.get("device", "cpu"),
    }
    bayes = getattr(task, "bayes_accuracy", None)
    if bayes is not None:
        metrics["bayes"] = {str(m): bayes(m) for m in context_sizes}
    if diagnostics:
        from personalign.np.diagnostics import mixed_context_accuracy
        from personalign.np.episodes import PoolEpisodeSource

        if not isinstance(source, PoolEpisodeSource):
            raise ValueError(f"diagnostics need a pool-based task; {meta['task']!r} is not one")
        metrics["diagnostics"] = {
            "num_context": 10,
            "mixed_context": mixed_context_accuracy(
                model, source, num_context=10, seed=seed, num_targets=task.eval_targets
            ),
        }
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (folder / "metrics.md").write_text(
        grid_markdown(
            grid, title=f"{meta['task']} / {meta['model']} (seed {meta['seed']})", bayes=metrics.get("bayes")
        )
    )
    series = {name: {m: (c.mean, *c.ci95) for m, c in row.items()} for name, row in grid.per_type.items()}
    series["average"] = {m: (c.mean, *c.ci95) for m, c in grid.average.items()}
    plot_accuracy_vs_context(
        series,
        folder / "acc_vs_context.png",
        title=f"{meta['task']}: {meta['model']}",
        bayes={int(k): v for k, v in metrics.get("bayes", {}).items()} or None,
    )
    return metrics


def grid_markdown(grid: GridResult, *, title: str, bayes: Mapping[str, float] | None = None) -> str:
    """A Markdown table (percent) of a grid: one row per type plus the average (and Bayes)."""
    ms = grid.context_sizes
    lines = [
        f"### {title}",
        "",
        "| type | " + " | ".join(f"m={m}" for m in ms) + " |",
        "|---|" + "---|" * len(ms),
    ]
    for name, row in grid.per_type.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * row[m].mean:.1f}" for m in ms) + " |")
    lines.append(
        "| **average** | "
        + " | ".join(
            f"{100 * c.mean:.1f} ± {50 * (c.ci95[1] - c.ci95[0]):.1f}" for c in (grid.average[m] for m in ms)
        )
        + " |"
    )
    if bayes:
        lines.append("| Bayes-optimal | " + " | ".join(f"{100 * bayes[str(m)]:.2f}" for m in ms) + " |")
    return "\n".join(lines) + "\n"
