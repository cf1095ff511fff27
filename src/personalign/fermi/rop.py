"""Retrieval-of-Prompt (spec §4): pick, per question, the pool prompt that was most accurate on
the question's nearest training questions, using the cached correctness matrix ``C``.

Similarities are rounded to 1e-6 so batched and unbatched embeddings agree; ties in similarity go
to the lower training index, ties in neighbour accuracy are broken by overall ``acc``, then
``soft``, then earlier ``birth``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from personalign.data.types import Question


def question_text(question: Question) -> str:
    """What is embedded for a question: its text, then its options one per line."""
    return "\n".join([" ".join(question.text.split()), *(str(o) for o in question.options)])


def nearest(similarities: Sequence[float], n: int, exclude: int | None = None) -> list[tuple[int, float]]:
    """The ``n`` most similar indices (clamped to ``[1, available]``) as ``(index, similarity)``,
    most similar first, ties to the lower index."""
    cands = [(i, round(float(s), 6)) for i, s in enumerate(similarities) if i != exclude]
    cands.sort(key=lambda t: (-t[1], t[0]))
    n = max(1, min(n, len(cands)))
    return cands[:n]


def similarity_matrix(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Cosine similarities of L2-normalised rows (renormalised here to be safe)."""

    def unit(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a, dtype=np.float64)
        norm = np.linalg.norm(a, axis=1, keepdims=True)
        return a / np.where(norm == 0, 1.0, norm)

    return unit(queries) @ unit(keys).T


@dataclass(frozen=True)
class RopChoice:
    """Which pool prompt RoP chose for one question, and why.

    Attributes:
        index: position of the chosen prompt in the pool.
        neighbour_acc: each pool prompt's accuracy on the neighbours.
        tie_break: ``None`` if neighbour accuracy alone decided; else the criterion that did
            (``"acc"``, ``"soft"`` or ``"birth"``).
    """

    index: int
    neighbour_acc: tuple[float, ...]
    tie_break: str | None


def select_prompt(
    C: Sequence[Sequence[bool | int]],
    acc: Sequence[float],
    soft: Sequence[float],
    birth: Sequence[int],
    neighbour_ids: Sequence[int],
    use_soft: bool = True,
) -> RopChoice:
    """The argmax over pool prompts of accuracy on ``neighbour_ids`` (rows of ``C``), with ties
    broken by overall ``acc``, then ``soft`` (if ``use_soft``), then lower ``birth``."""
    if not C:
        raise ValueError("Retrieval-of-Prompt needs a non-empty pool")
    if not neighbour_ids:
        raise ValueError("Retrieval-of-Prompt needs at least one neighbour")
    nacc = tuple(round(sum(int(row[i]) for i in neighbour_ids) / len(neighbour_ids), 9) for row in C)
    top = max(nacc)
    cands = [p for p in range(len(C)) if nacc[p] == top]
    if len(cands) == 1:
        return RopChoice(index=cands[0], neighbour_acc=nacc, tie_break=None)
    criteria = [
        ("acc", lambda p: round(acc[p], 9)),
        ("soft", lambda p: round(soft[p], 9) if use_soft else 0.0),
        ("birth", lambda p: -birth[p]),
    ]
    for name, crit in criteria:
        best = max(crit(p) for p in cands)
        cands = [p for p in cands if crit(p) == best]
        if len(cands) == 1:
            return RopChoice(index=cands[0], neighbour_acc=nacc, tie_break=name)
    return RopChoice(index=min(cands), neighbour_acc=nacc, tie_break="index")
