"""Cost accounting per (user, method, phase) from the language models' :class:`Usage` counters.

:class:`MeteredLM` wraps a language model and splits its usage by call kind: choice scoring (the
answering role) and generation (the optimizer role), so the two roles are counted apart even when
one model plays both. The runner takes a :meth:`MeteredLM.snapshot` before and after a phase
(``fit`` or ``predict``); the difference is that phase's cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from personalign.lm.base import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    LanguageModel,
)
from personalign.lm.usage import Usage

USAGE_FIELDS = ("calls", "cache_hits", "cache_misses", "prompt_tokens", "generated_tokens", "seconds")


def _usage_of(lm: Any) -> Usage:
    usage = getattr(lm, "usage", None)
    return usage.copy() if isinstance(usage, Usage) else Usage()


class MeteredLM:
    """A transparent :class:`LanguageModel` wrapper that meters scoring and generation separately.

    ``usage`` is the wrapped model's own counter (all calls). ``scoring`` and ``generation`` hold
    the part of it spent inside :meth:`score_choices` and :meth:`generate` respectively. Other
    attributes are forwarded to the wrapped model.
    """

    def __init__(self, lm: LanguageModel) -> None:
        self.inner = lm
        self.scoring = Usage()
        self.generation = Usage()

    @property
    def backend(self) -> str:
        return self.inner.backend

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        before = _usage_of(self.inner)
        try:
            return self.inner.score_choices(requests)
        finally:
            self.scoring.add(_usage_of(self.inner) - before)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        before = _usage_of(self.inner)
        try:
            return self.inner.generate(requests)
        finally:
            self.generation.add(_usage_of(self.inner) - before)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def snapshot(self) -> tuple[Usage, Usage]:
        return self.scoring.copy(), self.generation.copy()

    def __getattr__(self, name: str) -> Any:  # only called for attributes not defined here
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass
class PhaseCost:
    """LM usage of one phase by role (``answer`` = choice scoring, ``optimizer`` = generation),
    plus the phase's wall-clock seconds."""

    answer: Usage = field(default_factory=Usage)
    optimizer: Usage = field(default_factory=Usage)
    wall_seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "answer": self.answer.to_dict(),
            "optimizer": self.optimizer.to_dict(),
            "wall_seconds": self.wall_seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhaseCost:
        return cls(Usage(**d["answer"]), Usage(**d["optimizer"]), float(d["wall_seconds"]))


@contextmanager
def measure(lms: Sequence[MeteredLM], into: PhaseCost) -> Iterator[PhaseCost]:
    """Accumulate the scoring/generation usage of the distinct ``lms`` during the block."""
    distinct = list({id(m): m for m in lms}.values())
    before = [m.snapshot() for m in distinct]
    t0 = time.perf_counter()
    try:
        yield into
    finally:
        into.wall_seconds += time.perf_counter() - t0
        for m, (s0, g0) in zip(distinct, before, strict=True):
            s1, g1 = m.snapshot()
            into.answer.add(s1 - s0)
            into.optimizer.add(g1 - g0)


def total(phases: dict[str, PhaseCost]) -> dict[str, float]:
    """Flat totals over phases: calls executed (by role), cache hits, tokens, LM and wall seconds."""
    out: dict[str, float] = {k: 0.0 for k in USAGE_FIELDS}
    out["wall_seconds"] = 0.0
    out["answer_calls"] = 0.0
    out["optimizer_calls"] = 0.0
    for pc in phases.values():
        for u in (pc.answer, pc.optimizer):
            for k in USAGE_FIELDS:
                out[k] += getattr(u, k)
        out["wall_seconds"] += pc.wall_seconds
        out["answer_calls"] += pc.answer.calls
        out["optimizer_calls"] += pc.optimizer.calls
    return out
