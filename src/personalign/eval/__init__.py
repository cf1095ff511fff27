"""Evaluation harness: run methods on users (:func:`evaluate`), score, compare and report.

* :mod:`personalign.eval.runner` – users × methods, resumable, parallel processes, per-user artefacts
* :mod:`personalign.eval.metrics` – accuracy, ``1 − JS distance``, ``1 − W1/(n−1)``
* :mod:`personalign.eval.stats` – bootstrap intervals, Wilcoxon (Pratt), Holm
* :mod:`personalign.eval.cost` – LM usage per (user, method, phase)
* :mod:`personalign.eval.report` – ``summary.json``, ``report.md``, ``accuracy.png``
* :mod:`personalign.eval.demo` – the ``personalign demo`` run
"""

from personalign.eval.report import summarize, write_report
from personalign.eval.runner import EvalConfig, RunConfigMismatch, RunResult, evaluate

__all__ = ["EvalConfig", "RunConfigMismatch", "RunResult", "evaluate", "summarize", "write_report"]
