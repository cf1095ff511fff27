"""The language-model boundary: request/result types and the :class:`LanguageModel` protocol.

Every LM call in personalign goes through this interface, so caching (:mod:`personalign.lm.cache`),
usage accounting (:mod:`personalign.lm.usage`) and call recording (for tests) live in one place and
methods never know which backend runs.

Two kinds of call:

* **choice scoring** – a chat that ends with a lettered multiple-choice question; the result holds
  the log-probability of each option letter at the answer position (one forward pass);
* **generation** – sampling with temperature, top-p, max tokens, stop strings and a seed.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from personalign.lm.usage import Usage

Role = Literal["system", "user", "assistant"]
LETTERS = string.ascii_uppercase


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ChoiceRequest:
    """Score the option letters ``A..`` of a multiple-choice question that ends ``messages``.

    ``messages`` is the full chat (optional system turn, then a user turn holding the question and
    its lettered options, see :func:`personalign.lm.chat.render_choice`). ``n_options`` says how
    many letters (A, B, …) are valid answers.
    """

    messages: tuple[Message, ...]
    n_options: int

    def __post_init__(self) -> None:
        if not 1 <= self.n_options <= len(LETTERS):
            raise ValueError(f"n_options must be in 1..{len(LETTERS)}, got {self.n_options}")
        if not self.messages or self.messages[-1].role != "user":
            raise ValueError("a ChoiceRequest must end with a user message holding the question")

    @property
    def letters(self) -> str:
        return LETTERS[: self.n_options]


@dataclass(frozen=True)
class ChoiceResult:
    """Per-option log-probabilities at the answer position.

    ``logprobs[j]`` is the full-vocabulary log-probability of option ``j``'s letter (log-sum-exp
    over its single-token spellings such as ``"A"`` and ``" A"``). ``letter_mass`` is the total
    full-vocabulary probability on the letter tokens. ``method`` says how it was obtained:
    ``"logprobs"`` (read from the model's distribution) or ``"generate"`` (generate-and-parse
    fallback; then ``logprobs`` is one-hot in log space and ``letter_mass`` is 1 if parsed, else 0).
    """

    logprobs: tuple[float, ...]
    letter_mass: float
    method: Literal["logprobs", "generate"] = "logprobs"
    prompt_tokens: int = 0
    raw_text: str | None = None

    @property
    def probs(self) -> tuple[float, ...]:
        """Probabilities renormalised over the options (softmax of ``logprobs``)."""
        finite = [lp for lp in self.logprobs if lp != -math.inf]
        if not finite:
            return tuple(1.0 / len(self.logprobs) for _ in self.logprobs)
        m = max(finite)
        ex = [math.exp(lp - m) if lp != -math.inf else 0.0 for lp in self.logprobs]
        s = sum(ex)
        return tuple(e / s for e in ex)

    @property
    def pred(self) -> int | None:
        """Index of the most likely option, after rounding to 1e-6 (ties go to the lowest index).

        ``None`` when the generate-and-parse fallback could not parse an answer.
        """
        if self.method == "generate" and self.letter_mass == 0.0:
            return None
        rounded = [round(p, 6) for p in self.probs]
        return max(range(len(rounded)), key=lambda j: (rounded[j], -j))


@dataclass(frozen=True)
class GenerationRequest:
    """Sample a continuation of ``messages``.

    ``prefill`` is text the assistant turn starts with (the returned ``text`` excludes it).
    ``temperature == 0`` means greedy decoding. ``seed`` makes sampling reproducible.
    """

    messages: tuple[Message, ...]
    max_tokens: int = 128
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    prefill: str = ""

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass(frozen=True)
class GenerationResult:
    """A generated continuation with its token counts."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: Literal["stop", "length"] = "stop"


@runtime_checkable
class LanguageModel(Protocol):
    """What every backend (and wrapper such as the cache) provides.

    ``model_id`` identifies the exact weights (name plus revision or file hash) and is part of the
    cache key. ``usage`` accumulates calls, tokens and seconds for the life of the object.
    """

    backend: str
    usage: Usage

    @property
    def model_id(self) -> str: ...

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        """Score a batch of multiple-choice requests; results are in request order."""
        ...

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Generate for a batch of requests; results are in request order."""
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` takes for this model."""
        ...


class LMError(RuntimeError):
    """A language-model backend failed in a way the caller should see (bad request, server down…)."""


@dataclass
class RecordedCall:
    """One call seen by :class:`personalign.lm.recording.RecordingLM` (used by privacy tests)."""

    kind: Literal["score", "generate"]
    messages: tuple[Message, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "\n".join(m.content for m in self.messages)
