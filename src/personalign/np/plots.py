"""Accuracy-vs-context plots (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def plot_accuracy_vs_context(
    series: Mapping[str, Mapping[int, tuple[float, float, float]]],
    path: str | Path,
    *,
    title: str = "",
    bayes: Mapping[int, float] | None = None,
    hlines: Mapping[str, float] | None = None,
    paper: Mapping[int, float] | None = None,
) -> Path:
    """Plot accuracy (percent) against context size ``m``.

    ``series[name][m] = (mean, lo, hi)`` as fractions, drawn as a line with a CI band; ``bayes`` as a
    dashed black line; ``hlines`` (e.g. BTL, oracle) as horizontal lines; ``paper`` as crosses.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, pts in series.items():
        ms = sorted(pts)
        mean = [100 * pts[m][0] for m in ms]
        ax.plot(ms, mean, marker="o", label=name)
        ax.fill_between(ms, [100 * pts[m][1] for m in ms], [100 * pts[m][2] for m in ms], alpha=0.2)
    if bayes:
        ms = sorted(bayes)
        ax.plot(ms, [100 * bayes[m] for m in ms], "k--", label="Bayes-optimal")
    if paper:
        ms = sorted(paper)
        ax.plot(ms, [100 * paper[m] for m in ms], "x", color="gray", markersize=8, label="paper NP-BTL")
    for i, (name, y) in enumerate((hlines or {}).items()):
        ax.axhline(100 * y, linestyle=":", color=f"C{(i + 5) % 10}", label=name)
    ax.set_xlabel("context pairs m")
    ax.set_ylabel("target accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
