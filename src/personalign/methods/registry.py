"""The registry of personalization methods, by name.

A method is registered as a factory ``(MethodContext) -> Personalizer``. The context carries the
shared, user-independent resources (language models, embedder, seed, options). It never carries
another user's data; the only exception is ``reference``, population aggregates used by the
``group-majority`` reference method, which is explicitly exempt from the privacy invariant and
labelled as such in every report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from personalign.embed.base import Embedder
from personalign.lm.base import LanguageModel
from personalign.methods.base import Personalizer
from personalign.registry import Registry


@dataclass(frozen=True)
class MethodContext:
    """User-independent resources handed to a method factory.

    Attributes:
        answer_lm: the model that answers the questions.
        optimizer_lm: the model that writes prompts (optimization methods); defaults to ``answer_lm``.
        embedder: sentence embedder for retrieval (few-shot, Retrieval-of-Prompt).
        seed: global seed; methods derive per-user seeds from it and the user id.
        options: method-specific settings (e.g. Fermi config overrides, a trained model folder).
        reference: population aggregates ``{question_id: distribution}`` for ``group-majority`` only.
        workdir: folder where a method may keep per-user state for resuming (``None``: no state).
    """

    answer_lm: LanguageModel | None = None
    optimizer_lm: LanguageModel | None = None
    embedder: Embedder | None = None
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    reference: Mapping[str, tuple[float, ...]] | None = None
    workdir: str | None = None


MethodFactory = Callable[[MethodContext], Personalizer]

METHODS: Registry[MethodFactory] = Registry("method")


def get_method(name: str, context: MethodContext) -> Personalizer:
    """Build the method registered as ``name`` for one user."""
    return METHODS.get(name)(context)
