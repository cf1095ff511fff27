"""Summaries and reports of an evaluation run: ``summary.json``, ``report.md`` and ``accuracy.png``.

:func:`summarize` reads the per-(user, method) artefacts the runner wrote and computes, per method:
macro accuracy over users with a 95% percentile-bootstrap interval, micro accuracy, the paired
difference ``fermi − method`` (mean, bootstrap CI, two-sided Wilcoxon signed-rank with Pratt zero
handling, Holm-corrected across methods), distributional similarity where the targets are
distributions, accuracy on the subset of questions ``group-majority`` covers, cost per user and
diagnostics. Everything is derived from the files, so a summary can be rebuilt at any time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from personalign.eval.io import atomic_write_json, atomic_write_text
from personalign.eval.runner import REFERENCE_METHODS, pair_dir
from personalign.eval.stats import bootstrap_ci, holm, paired_comparison

REFERENCE_NOTE = {
    "group-majority": "uses other people's aggregate answers (population majority); not a personalization "
    "method and exempt from the per-user privacy invariant",
    "np-btl": "learns population structure from other users' preferences",
    "oracle": "reads the test answers",
}

COST_KEYS = (
    "answer_calls",
    "optimizer_calls",
    "cache_hits",
    "prompt_tokens",
    "generated_tokens",
    "seconds",
    "wall_seconds",
)


def _load_results(out: Path, methods: Sequence[str], users: Sequence[str]) -> dict[str, dict[str, dict]]:
    res: dict[str, dict[str, dict]] = {}
    for m in methods:
        res[m] = {}
        for u in users:
            f = pair_dir(out, m, u) / "result.json"
            if f.is_file():
                res[m][u] = json.loads(f.read_text())
    return res


def _load_predictions(out: Path, method: str, user: str) -> list[dict[str, Any]]:
    f = pair_dir(out, method, user) / "predictions.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


def _mean(xs: Sequence[float]) -> float | None:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else None


def summarize(
    out: str | Path,
    *,
    users: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    baseline: str = "fermi",
    seed: int = 0,
    n_resamples: int = 10_000,
) -> dict[str, Any]:
    """Compute the run summary from the artefacts under ``out`` (see module docstring)."""
    out = Path(out)
    run = json.loads((out / "run.json").read_text())
    methods = list(methods or run["config"]["methods"])
    users = list(users or run.get("users", []))
    results = _load_results(out, methods, users)

    per_method: dict[str, dict[str, Any]] = {}
    acc: dict[str, dict[str, float]] = {}
    for m in methods:
        r = results[m]
        acc[m] = {u: x["accuracy"] for u, x in r.items() if x.get("accuracy") is not None}
        sims = {u: x["similarity"] for u, x in r.items() if x.get("similarity") is not None}
        n_items = sum(x["n_test"] for x in r.values())
        cost = {k: _mean([x["cost_total"].get(k, 0.0) for x in r.values()]) for k in COST_KEYS}
        diag_keys = ("letter_mass", "rop_tie_rate", "train_minus_test", "gold_logloss")
        per_method[m] = {
            "n_users": len(acc[m]),
            "n_items": n_items,
            "accuracy": bootstrap_ci(list(acc[m].values()), n_resamples=n_resamples, seed=seed).to_dict(),
            "micro_accuracy": (sum(x["n_correct"] for x in r.values()) / n_items) if n_items else None,
            "similarity": (
                bootstrap_ci(list(sims.values()), n_resamples=n_resamples, seed=seed).to_dict()
                if sims
                else None
            ),
            "similarity_metric": next(
                (x["similarity_metric"] for x in r.values() if x.get("similarity_metric")), None
            ),
            "cost_per_user": cost,
            "diagnostics": {k: _mean([x["diagnostics"].get(k) for x in r.values()]) for k in diag_keys},
            "per_user_accuracy": acc[m],
            "uses_other_users_data": m in REFERENCE_METHODS or m in REFERENCE_NOTE,
            "note": REFERENCE_NOTE.get(m),
        }

    # paired comparisons: baseline − method, Holm across the compared methods
    paired: dict[str, dict[str, Any]] = {}
    if acc.get(baseline):
        others = [m for m in methods if m != baseline and acc[m]]
        comps = [
            paired_comparison(baseline, m, acc[baseline], acc[m], n_resamples=n_resamples, seed=seed)
            for m in others
        ]
        adj = holm([c.p_value for c in comps])
        for m, c, p in zip(others, comps, adj, strict=True):
            d = c.to_dict()
            d["p_holm"] = p
            paired[m] = d

    # the subset of test questions group-majority covers (per user), for every method
    coverage: dict[str, Any] | None = None
    ref = next((m for m in methods if m in REFERENCE_METHODS and results[m]), None)
    if ref is not None:
        covered = {u: set(x.get("covered", [])) for u, x in results[ref].items()}
        total_items = sum(x["n_test"] for x in results[ref].values())
        n_cov = sum(len(c) for c in covered.values())
        cov_acc: dict[str, dict[str, float]] = {}
        for m in methods:
            cov_acc[m] = {}
            for u, qids in covered.items():
                if not qids or u not in results[m]:
                    continue
                preds = [p for p in _load_predictions(out, m, u) if p["question_id"] in qids]
                if preds:
                    cov_acc[m][u] = sum(p["correct"] for p in preds) / len(preds)
        coverage = {
            "reference_method": ref,
            "covered_items": n_cov,
            "total_items": total_items,
            "fraction": n_cov / total_items if total_items else None,
            "accuracy": {
                m: bootstrap_ci(list(v.values()), n_resamples=n_resamples, seed=seed).to_dict()
                for m, v in cov_acc.items()
                if v
            },
        }
        if cov_acc.get(baseline):
            others = [m for m in methods if m != baseline and cov_acc[m]]
            comps = [
                paired_comparison(
                    baseline, m, cov_acc[baseline], cov_acc[m], n_resamples=n_resamples, seed=seed
                )
                for m in others
            ]
            adj = holm([c.p_value for c in comps])
            coverage["paired"] = {}
            for m, c, p in zip(others, comps, adj, strict=True):
                d = c.to_dict()
                d["p_holm"] = p
                coverage["paired"][m] = d

    return {
        "config": run["config"],
        "result_hash": run.get("result_hash"),
        "users": users,
        "n_users": len(users),
        "baseline": baseline,
        "methods": per_method,
        "paired": paired,
        "coverage": coverage,
        "missing": {m: sorted(set(users) - set(results[m])) for m in methods if set(users) - set(results[m])},
    }


# --------------------------------------------------------------------------------------------
# rendering


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}"


def _ci(d: dict[str, Any] | None) -> str:
    if not d or d.get("mean") is None:
        return "–"
    return f"{_pct(d['mean'])} [{_pct(d['low'])}, {_pct(d['high'])}]"


def _p(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


def _num(x: float | None, fmt: str = "{:.0f}") -> str:
    return "–" if x is None else fmt.format(x)


def render_markdown(summary: dict[str, Any], *, chart: str | None = "accuracy.png") -> str:
    """The run's Markdown report (accuracy table, paired tests, coverage subset, cost, notes)."""
    cfg = summary["config"]
    base = summary["baseline"]
    ms = summary["methods"]
    lines = [
        f"# Evaluation: {cfg['dataset']}",
        "",
        f"- users: **{summary['n_users']}**"
        + (f" (user set `{cfg['user_set']}`)" if cfg.get("user_set") else "")
        + f"; training opinions per user: {cfg['train_k']}; seed {cfg['seed']}",
        f"- answering model: `{cfg['model']}`; "
        f"optimizer model: `{cfg.get('optimizer_model') or cfg['model']}`"
        + (f"; backend `{cfg['backend']}`" if cfg.get("backend") else ""),
        f"- method options: `{json.dumps(cfg.get('method_options') or {}, sort_keys=True)}`; "
        f"config hash `{summary.get('result_hash')}`",
        "- accuracy: per-user test accuracy macro-averaged over users, in %, with a 95% percentile "
        "bootstrap interval over users (10,000 resamples); micro pools all test items.",
        f"- Δ: `{base} − method` in points, paired per user (bootstrap CI); p: two-sided Wilcoxon "
        "signed-rank (Pratt zeros), Holm-corrected across methods; W/T/L: users where "
        f"{base} wins/ties/loses.",
        "- cost: LM requests *executed* for the method on a user (choice scoring by the answering model + "
        "generation by the optimizer), tokens and wall-clock seconds; requests an earlier method already "
        "made (the same optimization, e.g. `fermi-no-rop` after `fermi`) are cache hits and cost nothing.",
        "",
    ]
    if "run" in summary:
        r = summary["run"]
        lines.insert(
            -1,
            f"- this invocation: {r['ran']} (user, method) pairs run, {r['skipped']} resumed from disk, "
            f"{r['seconds']:.0f} s wall, {r['workers']} worker(s)",
        )
    has_sim = any(m.get("similarity") for m in ms.values())
    sim_metric = next((m["similarity_metric"] for m in ms.values() if m.get("similarity_metric")), None)
    header = [
        "method",
        "users",
        "accuracy % [95% CI]",
        "micro %",
        f"Δ {base} − method [95% CI]",
        "p (Holm)",
        "W/T/L",
    ]
    if has_sim:
        header.append(f"similarity % ({'1 − JS dist.' if sim_metric == 'js' else '1 − W1/(n−1)'})")
    header += [
        "LM calls/user (answer + optimizer)",
        "cache hits/user",
        "tokens/user (prompt / generated)",
        "s/user",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, m in ms.items():
        p = summary["paired"].get(name)
        c = m["cost_per_user"]
        label = name + (" †" if m.get("note") else "")
        row = [
            label,
            str(m["n_users"]),
            _ci(m["accuracy"]),
            _pct(m["micro_accuracy"]),
            _ci(p["diff"]) if p else ("(reference)" if name == base else "–"),
            f"{_p(p['p_value'])} ({_p(p['p_holm'])})" if p else "–",
            f"{p['wins']}/{p['ties']}/{p['losses']}" if p else "–",
        ]
        if has_sim:
            row.append(_ci(m["similarity"]))
        row += [
            f"{_num(c['answer_calls'])} + {_num(c['optimizer_calls'])}",
            _num(c["cache_hits"]),
            f"{_num(c['prompt_tokens'])} / {_num(c['generated_tokens'])}",
            _num(c["wall_seconds"], "{:.1f}"),
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    notes = [f"† `{n}`: {m['note']}." for n, m in ms.items() if m.get("note")]
    if notes:
        lines += [*notes, ""]

    cov = summary.get("coverage")
    if cov:
        lines += [
            f"## On the questions `{cov['reference_method']}` covers",
            "",
            f"`{cov['reference_method']}` has population data for {cov['covered_items']} of "
            f"{cov['total_items']} test items ({_pct(cov['fraction'])}%). Every method on that subset:",
            "",
            f"| method | users | accuracy % [95% CI] | Δ {base} − method [95% CI] | p (Holm) |",
            "|---|---|---|---|---|",
        ]
        for name, a in cov["accuracy"].items():
            p = (cov.get("paired") or {}).get(name)
            lines.append(
                f"| {name} | {a['n']} | {_ci(a)} | {_ci(p['diff']) if p else '–'} | "
                f"{(_p(p['p_value']) + ' (' + _p(p['p_holm']) + ')') if p else '–'} |"
            )
        lines.append("")

    diag_rows = [
        (n, m["diagnostics"]) for n, m in ms.items() if any(v is not None for v in m["diagnostics"].values())
    ]
    if diag_rows:
        lines += [
            "## Diagnostics",
            "",
            "| method | mean letter mass | RoP tie rate | train − test acc. of chosen prompts "
            "| gold log-loss |",
            "|---|---|---|---|---|",
        ]
        for n, d in diag_rows:
            lines.append(
                f"| {n} | {_num(d['letter_mass'], '{:.3f}')} | {_num(d['rop_tie_rate'], '{:.2f}')} | "
                f"{_num(d['train_minus_test'], '{:+.3f}')} | {_num(d['gold_logloss'], '{:.3f}')} |"
            )
        lines.append("")
    low_mass = [n for n, d in diag_rows if d["letter_mass"] is not None and d["letter_mass"] < 0.5]
    if low_mass:
        lines += [
            f"**Warning:** mean letter mass below 0.5 for {', '.join(low_mass)}: the model often "
            "answers with something other than an option letter.",
            "",
        ]
    if summary.get("missing"):
        lines += ["## Missing", ""]
        lines += [f"- `{m}`: {len(us)} user(s) not finished" for m, us in summary["missing"].items()]
        lines.append("")
    if chart:
        lines += [f"![accuracy by method]({chart})", ""]
    return "\n".join(lines)


def render_chart(summary: dict[str, Any], path: Path) -> Path:
    """Bar chart of macro accuracy by method with 95% CI error bars (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, m in summary["methods"].items() if m["accuracy"].get("mean") is not None]
    means = [100 * summary["methods"][n]["accuracy"]["mean"] for n in names]
    lows = [100 * summary["methods"][n]["accuracy"]["low"] for n in names]
    highs = [100 * summary["methods"][n]["accuracy"]["high"] for n in names]
    err = [
        [m - lo for m, lo in zip(means, lows, strict=True)],
        [h - m for m, h in zip(means, highs, strict=True)],
    ]
    colors = [
        "#999999"
        if summary["methods"][n].get("note")
        else ("#d62728" if n == summary["baseline"] else "#1f77b4")
        for n in names
    ]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(names) + 2), 4.0))
    ax.bar(range(len(names)), means, yerr=err, capsize=4, color=colors)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(
        [n + (" †" if summary["methods"][n].get("note") else "") for n in names], rotation=30, ha="right"
    )
    ax.set_ylabel("accuracy (%), macro over users")
    cfg = summary["config"]
    ax.set_title(
        f"{cfg['dataset']}: {summary['n_users']} users, {cfg['model']} (95% bootstrap CI)", fontsize=9
    )
    if any(summary["methods"][n].get("note") for n in names):
        fig.text(0.01, 0.01, "† uses other people's data (reference only)", fontsize=7, color="#555555")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_report(out: str | Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``summary.json``, ``report.md`` and ``accuracy.png`` into ``out``."""
    out = Path(out)
    atomic_write_json(out / "summary.json", summary)
    png = render_chart(summary, out / "accuracy.png")
    md = out / "report.md"
    atomic_write_text(md, render_markdown(summary, chart=png.name))
    return md, png
