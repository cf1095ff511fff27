"""What the prompt optimization did, read back from an evaluation run's saved Fermi states.

For each Fermi-family method of a ``personalign eval`` output folder: where the best prompt came
from (a seed, the optimizer, or an Ext generator), how much training accuracy the loop gained over
the best seed prompt (a gain measured on the same 15 items it was selected on, so an optimistic
figure), why the loop stopped, and the candidate counters (parsed, accepted, rejected by reason).

    python -m personalign.fermi.pool_stats runs/fermi-oqa-30
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from personalign.fermi.memory import ScoredPrompt, sort_key


def method_pool_stats(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Aggregate the saved states (``state.json`` dicts) of one method over its users."""
    if not states:
        raise ValueError("no Fermi states to summarize")
    origins: Counter[str] = Counter()
    stops: Counter[str] = Counter()
    counters: Counter[str] = Counter()
    seed_acc, best_acc = [], []
    for state in states:
        archive = [ScoredPrompt.from_dict(p) for p in state["archive"]]
        use_soft = state.get("config", {}).get("use_soft", True)
        best = max(archive, key=lambda sp: sort_key(sp, use_soft))  # the loop's own ranking
        origins[best.origin.split(":")[0]] += 1
        seeds = [sp.acc for sp in archive if sp.origin.startswith("seed")]
        seed_acc.append(max(seeds) if seeds else float("nan"))
        best_acc.append(best.acc)
        stops[str(state.get("stop_reason"))] += 1
        for key, value in state.get("counters", {}).items():
            if isinstance(value, dict):
                for reason, n in value.items():
                    counters[f"{key}.{reason}"] += n
            else:
                counters[key] += value
    n = len(states)
    gains = [b - s for b, s in zip(best_acc, seed_acc, strict=True)]
    return {
        "users": n,
        "best_origin": dict(origins),
        "stop_reason": dict(stops),
        "train_acc_best_seed": statistics.fmean(seed_acc),
        "train_acc_best": statistics.fmean(best_acc),
        "train_gain": statistics.fmean(gains),
        "users_with_gain": sum(g > 0 for g in gains),
        "per_user": {k: v / n for k, v in sorted(counters.items())},
    }


def run_pool_stats(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{method: stats}`` for every method folder of ``run_dir`` that holds Fermi states."""
    root = Path(run_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not an evaluation output folder")
    out: dict[str, dict[str, Any]] = {}
    for method_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(method_dir.glob("*/state/*/state.json"))
        states = [json.loads(f.read_text()) for f in files]
        states = [s for s in states if "archive" in s]
        if states:
            out[method_dir.name] = method_pool_stats(states)
    return out


def markdown(stats: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of :func:`run_pool_stats`."""
    lines = [
        "| method | users | best prompt from (seed / optimizer / ext) | train acc. best seed → best "
        "| users with a gain | candidates accepted / parsed per user | stopped (rounds / patience) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in stats.items():
        o, c, st = s["best_origin"], s["per_user"], s["stop_reason"]
        lines.append(
            f"| {name} | {s['users']} | {o.get('seed', 0)} / {o.get('optimizer', 0)} / {o.get('ext', 0)} | "
            f"{100 * s['train_acc_best_seed']:.1f} → {100 * s['train_acc_best']:.1f} % | "
            f"{s['users_with_gain']} | {c.get('candidates_accepted', 0):.1f} / "
            f"{c.get('candidates_parsed', 0):.1f} | {st.get('rounds', 0)} / {st.get('patience', 0)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a `personalign eval --out` folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = parser.parse_args(argv)
    stats = run_pool_stats(args.run_dir)
    print(json.dumps(stats, indent=2) if args.json else markdown(stats))


if __name__ == "__main__":
    main()
