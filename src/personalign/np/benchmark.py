"""``personalign np bench synthetic``: BTL vs NP-BTL vs the Bayes-optimal accuracy over training seeds.

Writes into ``out``:

* ``synthetic.json``: exactly ``{"bayes": {m: acc}, "accuracy": {"btl": {m: {"mean", "ci"}}, "np-btl":
  {...}}, "train_seconds": total}`` (fractions; context sizes as string keys; ``ci`` = 95 % Student-t
  interval over training seeds);
* ``synthetic_details.json``: per-seed grids (per type, episode CIs), per-run training seconds, the
  Bayes predictor's accuracy on the very same evaluation episodes, the paper's numbers and the bar
  checks, machine load;
* ``synthetic.md`` (table) and ``synthetic.png`` (plot);
* ``runs/<model>/<seed>/``: the run folders (models, checkpoints, histories).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from personalign.np.bayes import bayes_optimal_accuracy, bayes_pool_accuracy
from personalign.np.episodes import Episode
from personalign.np.evaluate import BENCH_CONTEXT_SIZES, Cell, GridResult, aggregate_seeds, evaluate_grid
from personalign.np.runs import train_run
from personalign.np.synthetic import SYNTHETIC_TASK
from personalign.np.tasks import BenchProgress

PAPER_NP_BTL = {0: 0.764, 1: 0.866, 3: 0.947, 5: 0.974, 10: 0.989}
PAPER_BTL = 0.764


def _cell_json(c: Cell) -> dict[str, Any]:
    return {"mean": c.mean, "ci": [c.ci95[0], c.ci95[1]]}


def run_synthetic_benchmark(
    out: str | Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    quick: bool = False,
    progress: BenchProgress | None = None,
    context_sizes: Sequence[int] = BENCH_CONTEXT_SIZES,
    episodes: int | None = None,
    oracles: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train BTL and NP-BTL (and optionally the per-type oracles) for every seed, evaluate them on
    identical test episodes, and write the files listed in the module docstring.

    ``quick`` trains for 40 steps and evaluates 100 episodes per cell (a smoke run, not a result).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ov = dict(overrides or {})
    if quick:
        ov.setdefault("max_steps", 40)
        ov.setdefault("eval_every", 20)
        ov.setdefault("val_episodes", 64)
        episodes = episodes or 100
    episodes = episodes or SYNTHETIC_TASK.eval_episodes
    source = SYNTHETIC_TASK.build_source(seed=0)
    models = ["btl", "np-btl"] + (["oracle-0", "oracle-1"] if oracles else [])
    load_start = os.getloadavg()
    cache: dict[tuple[int, int], list[Episode]] = {}
    grids: dict[str, list[GridResult]] = {m: [] for m in models}
    train_seconds: dict[str, list[float]] = {m: [] for m in models}
    for seed in seeds:
        for name in models:
            kind, oracle_type = (
                ("oracle", int(name.split("-")[1])) if name.startswith("oracle") else (name, None)
            )
            desc = f"seed {seed} {name}"

            def hook(info: dict[str, Any], desc: str = desc) -> None:
                if progress is not None:
                    progress(desc, info["step"], info["total"])

            tr = train_run(
                "synthetic",
                out / "runs" / name / str(seed),
                model=kind,
                seed=seed,
                oracle_type=oracle_type,
                overrides=ov,
                progress=hook,
            )
            train_seconds[name].append(tr.train_seconds_)

            def eval_hook(done: int, total: int, desc: str = desc) -> None:
                if progress is not None:
                    progress(f"{desc} eval", done, total)

            grids[name].append(
                evaluate_grid(
                    tr.model,
                    source,
                    context_sizes=context_sizes,
                    episodes=episodes,
                    num_targets=SYNTHETIC_TASK.eval_targets,
                    seed=0,
                    progress=eval_hook,
                    episode_cache=cache,
                )
            )
    test_pool = source.pool("test")
    bayes_eps = {
        m: float(np.mean([bayes_pool_accuracy(test_pool, cache[(k, m)]) for k in range(2)]))
        for m in context_sizes
    }
    bayes = {str(m): bayes_optimal_accuracy(m) for m in context_sizes}
    agg = {name: aggregate_seeds(grids[name]) for name in models}
    summary = {
        "bayes": bayes,
        "accuracy": {
            name: {str(m): _cell_json(agg[name][m]) for m in context_sizes} for name in ("btl", "np-btl")
        },
        "train_seconds": float(sum(sum(v) for v in train_seconds.values())),
    }
    checks = {}
    for m in context_sizes:
        np_mean = agg["np-btl"][m].mean
        checks[str(m)] = {
            "np_btl": np_mean,
            "paper": PAPER_NP_BTL.get(m),
            "at_or_above_paper": None if m not in PAPER_NP_BTL else bool(np_mean >= PAPER_NP_BTL[m] - 1e-12),
            "within_1pt_of_bayes": bool(np_mean >= bayes_optimal_accuracy(m) - 0.01),
            "btl_in_75pm2": bool(abs(agg["btl"][m].mean - 0.75) <= 0.02),
        }
    details = {
        "seeds": list(seeds),
        "context_sizes": list(context_sizes),
        "episodes_per_cell": episodes,
        "bayes_analytic": bayes,
        "bayes_on_eval_episodes": {str(m): v for m, v in bayes_eps.items()},
        "paper": {"np-btl": {str(m): v for m, v in PAPER_NP_BTL.items()}, "btl": PAPER_BTL},
        "seed_aggregate": {name: {str(m): agg[name][m].to_dict() for m in context_sizes} for name in models},
        "per_seed": {name: [g.to_dict() for g in grids[name]] for name in models},
        "train_seconds": {name: v for name, v in train_seconds.items()},
        "checks": checks,
        "overrides": ov,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "synthetic.json").write_text(json.dumps(summary, indent=2))
    (out / "synthetic_details.json").write_text(json.dumps(details, indent=2))
    (out / "synthetic.md").write_text(synthetic_markdown(summary, details))
    from personalign.np.plots import plot_accuracy_vs_context

    series = {name: {m: (agg[name][m].mean, *agg[name][m].ci95) for m in context_sizes} for name in models}
    plot_accuracy_vs_context(
        series,
        out / "synthetic.png",
        title="synthetic task: accuracy vs context size",
        bayes={m: bayes_optimal_accuracy(m) for m in context_sizes},
        paper=PAPER_NP_BTL,
    )
    return summary


def synthetic_markdown(summary: Mapping[str, Any], details: Mapping[str, Any]) -> str:
    """The benchmark table (percent): paper, ours (mean ± seed CI half-width), Bayes, bar checks."""
    ms = [str(m) for m in details["context_sizes"]]
    head = "| model | " + " | ".join(f"m={m}" for m in ms) + " |\n|---|" + "---|" * len(ms)
    rows = [head]
    rows.append("| BTL (paper) | " + " | ".join(f"{100 * PAPER_BTL:.1f}" for _ in ms) + " |")
    for name, label in (("btl", "BTL (ours)"), ("np-btl", "NP-BTL (ours)")):
        cells = summary["accuracy"][name]
        rows.append(
            f"| {label} | "
            + " | ".join(
                f"{100 * cells[m]['mean']:.2f} ± {50 * (cells[m]['ci'][1] - cells[m]['ci'][0]):.2f}"
                for m in ms
            )
            + " |"
        )
    for name in details["seed_aggregate"]:
        if name.startswith("oracle"):
            cells = details["seed_aggregate"][name]
            rows.append(
                f"| {name} (ours; both types) | "
                + " | ".join(f"{100 * cells[m]['mean']:.2f}" for m in ms)
                + " |"
            )
    rows.append(
        "| NP-BTL (paper) | "
        + " | ".join(f"{100 * details['paper']['np-btl'].get(m, float('nan')):.1f}" for m in ms)
        + " |"
    )
    rows.append(
        "| Bayes-optimal (exact) | " + " | ".join(f"{100 * summary['bayes'][m]:.2f}" for m in ms) + " |"
    )
    rows.append(
        "| Bayes predictor on the same episodes | "
        + " | ".join(f"{100 * details['bayes_on_eval_episodes'][m]:.2f}" for m in ms)
        + " |"
    )
    ck = details["checks"]
    rows.append(
        "| NP-BTL ≥ paper? | "
        + " | ".join(
            "n/a"
            if ck[m]["at_or_above_paper"] is None
            else ("yes" if ck[m]["at_or_above_paper"] else "**no**")
            for m in ms
        )
        + " |"
    )
    rows.append(
        "| NP-BTL within 1 pt of Bayes? | "
        + " | ".join("yes" if ck[m]["within_1pt_of_bayes"] else "**no**" for m in ms)
        + " |"
    )
    secs = details["train_seconds"]
    foot = [
        "",
        f"Seeds: {details['seeds']}; {details['episodes_per_cell']} test episodes per (type, m) cell, "
        "20 targets each, "
        "disjoint from the context; ± = half-width of the 95 % Student-t interval over seeds.",
        "Training wall time per run (s): "
        + "; ".join(f"{k}: " + ", ".join(f"{s:.0f}" for s in v) for k, v in secs.items())
        + ".",
        f"Load average at start/end: {details['loadavg_start'][0]:.1f} / {details['loadavg_end'][0]:.1f} "
        f"on {details['cpu_count']} cores.",
    ]
    return "\n".join(rows) + "\n" + "\n".join(foot) + "\n"
