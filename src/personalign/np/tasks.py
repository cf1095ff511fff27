"""Registries that the ``personalign np`` CLI dispatches on: training tasks and benchmarks.

Plugging in a task (e.g. the real-text ``hh``/``uf`` tasks): implement :class:`NPTask` in your own
module and add **one lazy line** below (``"module:attribute"``, imported only when used)::

    TASKS.register("hh", "personalign.np.text_tasks:HH_TASK", help="HH-RLHF with simulated user types")

Then ``personalign np train --task hh``, ``np eval`` and ``np score`` work unchanged: the trainer only
sees the :class:`~personalign.np.episodes.EpisodeSource` that ``build_source`` returns, and text
scoring uses the :class:`~personalign.np.state.Featurizer` from ``featurizer()``.

Plugging in a benchmark: a callable ``fn(out: Path, *, seeds: Sequence[int], quick: bool,
progress: BenchProgress | None) -> dict`` writing its JSON/Markdown/PNG into ``out`` and returning the
JSON summary; register it in :data:`BENCHES` (``np bench NAME --out DIR``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from personalign.np.config import NPModelConfig, NPTrainingConfig
from personalign.np.episodes import EpisodeSource
from personalign.np.state import Featurizer
from personalign.registry import Registry


@runtime_checkable
class NPTask(Protocol):
    """A meta-training task: where episodes come from and the defaults to train on them.

    Attributes:
        name: registry name (``synthetic``, ``hh``, ``uf`` …).
        description: one line for ``--help`` and reports.
        eval_episodes: episodes per (type, m) cell in evaluation (spec: 1000 synthetic, 300 text).
        eval_targets: targets per evaluation episode (spec: 20).
    """

    name: str
    description: str
    eval_episodes: int
    eval_targets: int

    def build_source(self, *, seed: int = 0, data_dir: Path | None = None, **options: Any) -> EpisodeSource:
        """The task's episodes (splits ``train``/``val``/``test``); ``seed`` is the data seed."""
        ...

    def model_config(self, kind: str, feature_dim: int) -> NPModelConfig:
        """Default architecture for ``kind`` (``np-btl`` or ``btl``) on this task."""
        ...

    def training_config(self, **overrides: Any) -> NPTrainingConfig:
        """Default training configuration, with ``overrides`` applied."""
        ...

    def featurizer(self, **options: Any) -> Featurizer | None:
        """Text -> features for ``np score`` / best-of-N (``None`` for numeric tasks)."""
        ...


class BenchProgress(Protocol):
    """Progress callback of a benchmark: ``(description, completed, total)``."""

    def __call__(self, description: str, completed: float, total: float) -> None: ...


BenchFn = Callable[..., dict[str, Any]]

TASKS: Registry[NPTask] = Registry("np task")
TASKS.register(
    "synthetic",
    "personalign.np.synthetic:SYNTHETIC_TASK",
    help="the paper's 1-d synthetic task (two conflicting user types, scalar options)",
)
# Real-text tasks (personalign.np.text_tasks; lazy, so the synthetic path never imports them).
TASKS.register(
    "hh", "personalign.np.text_tasks:HH_TASK", help="HH-RLHF: faithful vs harmless-contrarian users"
)
TASKS.register(
    "uf", "personalign.np.text_tasks:UF_TASK", help="UltraFeedback sample: concise vs detailed users"
)
TASKS.register(
    "length", "personalign.np.text_tasks:LENGTH_TASK", help="HH-RLHF + UF: concise vs detailed users"
)
TASKS.register(
    "mix4", "personalign.np.text_tasks:MIX4_TASK", help="HH-RLHF + UF: all four simulated user types"
)
TASKS.register(
    "style4",
    "personalign.np.text_tasks:STYLE4_TASK",
    help="HH-RLHF + UF: concise, detailed, inquisitive and assertive users (measurable styles)",
)
TASKS.register(
    "opinions",
    "personalign.np.opinions:OPINIONS_TASK",
    help="OpinionQA respondents: answers as preferences (real users; evaluated users held out)",
)

BENCHES: Registry[BenchFn] = Registry("np benchmark")
BENCHES.register(
    "synthetic",
    "personalign.np.benchmark:run_synthetic_benchmark",
    help="BTL vs NP-BTL vs Bayes-optimal on the synthetic task over seeds",
)
BENCHES.register(
    "text",
    "personalign.np.text_bench:run_text_benchmark",
    help="real text with simulated users: BTL vs NP-BTL vs per-type oracles",
)
BENCHES.register(
    "bon",
    "personalign.np.best_of_n:run_bon_benchmark",
    help="conditional best-of-N reranking with NP-BTL vs BTL vs random",
)


def get_task(name: str) -> NPTask:
    """The task registered as ``name`` (``UnknownNameError`` lists the available ones)."""
    return TASKS.get(name)


def task_names() -> Sequence[str]:
    return TASKS.names()
