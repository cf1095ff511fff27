"""The :class:`Personalizer` protocol every method implements, and its prediction record.

A personalizer follows the scikit-learn estimator shape: ``__init__`` stores parameters, ``fit``
learns from **one** user's :class:`~personalign.data.types.UserSplit` (the evaluator passes it with
the test answers removed) and returns ``self``; learned state lives in trailing-underscore
attributes; ``predict`` answers new questions for that user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol, Self, runtime_checkable

from personalign.data.types import Question, UserSplit


@dataclass(frozen=True)
class Prediction:
    """A method's answer to one question.

    ``pred`` is the chosen option index (``None`` if no valid answer could be parsed), ``probs``
    the per-option probabilities, and ``info`` says how the answer was made (for Fermi: the prompt
    Retrieval-of-Prompt chose, its neighbours and whether a tie-break decided it).
    """

    question_id: str
    pred: int | None
    probs: tuple[float, ...]
    info: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@runtime_checkable
class Personalizer(Protocol):
    """Learns one user from their training opinions, then answers new questions as them."""

    def fit(self, split: UserSplit) -> Self:
        """Learn from ``split.profile`` and ``split.train`` only."""
        ...

    def predict(self, questions: Sequence[Question]) -> list[Prediction]:
        """Answer each question as the fitted user would."""
        ...
