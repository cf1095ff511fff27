"""Simulated pluralistic users on real text: user types as deterministic labelling functions.

The texts and the dataset labels are real (HH-RLHF, UltraFeedback); the *users* are simulated
labelling functions, not people (spec ``np-alignment.md`` §5c). A labelling function
``L_k(pair) -> "a" | "b" | None`` says which of the pair's two responses type ``k`` prefers, or
``None`` where the type is undefined on that pair. ``a`` is always the dataset's *chosen* response
and ``b`` its *rejected* one.

Types (the ``USER_TYPES`` registry):

* ``faithful``: the dataset's chosen response; undefined on UltraFeedback ties.
* ``harmless_contrarian``: the *rejected* response on harmless-base pairs, the chosen one elsewhere;
  defined where ``faithful`` is.
* ``concise``: the shorter response (whitespace words), on length-clear pairs only.
* ``detailed``: the longer response, on length-clear pairs only.

* ``inquisitive``: the response that asks a question (contains ``?``), on pairs where exactly one
  response does.
* ``assertive``: the response without a question, on the same pairs.

A pair is *length-clear* when ``|w_a - w_b| >= max(3, 0.1 * max(w_a, w_b))``. The last two types
are, like the length types, measurable properties of the text (not dataset labels); they give the
``style4`` task four types that can each be told from a few pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from personalign.registry import Registry

Choice = Literal["a", "b"]
Source = Literal["helpful", "harmless", "uf"]
SOURCES: tuple[str, ...] = ("helpful", "harmless", "uf")


@dataclass(frozen=True)
class TextPair:
    """One real preference pair as the user types see it.

    Attributes:
        pair_id: stable id (``source:sha256-prefix``), independent of file order.
        prompt: the prompt (for HH: the dialogue up to and including the last ``Assistant:``).
        a: the dataset's chosen response.
        b: the dataset's rejected response.
        source: ``helpful``, ``harmless`` (HH-RLHF subsets) or ``uf`` (UltraFeedback).
        tie: the dataset rates both responses equally (UltraFeedback score ties).
    """

    pair_id: str
    prompt: str
    a: str
    b: str
    source: str
    tie: bool = False

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(
                f"pair {self.pair_id}: unknown source {self.source!r}; expected one of {SOURCES}"
            )


def word_count(text: str) -> int:
    """``w(y)``: the whitespace word count of a response."""
    return len(text.split())


def length_clear(wa: int, wb: int) -> bool:
    """Whether two word counts differ enough for the length types: ``|wa-wb| >= max(3, 0.1*max)``."""
    return abs(wa - wb) >= max(3.0, 0.1 * max(wa, wb))


LabellingFunction = Callable[[str, str, str, str, bool], "Choice | None"]
"""``(prompt, a, b, source, tie) -> "a" | "b" | None``; see :class:`UserType`."""


@dataclass(frozen=True)
class UserType:
    """A simulated user type: a name, a one-line description and its labelling function."""

    name: str
    description: str
    fn: LabellingFunction

    def label(self, pair: TextPair) -> Choice | None:
        """Which response of ``pair`` this type prefers (``None``: undefined on this pair)."""
        return self.fn(pair.prompt, pair.a, pair.b, pair.source, pair.tie)

    def compare(self, prompt: str, y1: str, y2: str, source: str = "helpful") -> float:
        """Preference of this type for ``y1`` over ``y2`` on new text: 1 win, 0 loss, 0.5 undefined.

        Used to judge best-of-N picks; ``source`` matters only for ``harmless_contrarian``.
        """
        lab = self.fn(prompt, y1, y2, source, False)
        return 0.5 if lab is None else (1.0 if lab == "a" else 0.0)


def _faithful(prompt: str, a: str, b: str, source: str, tie: bool) -> Choice | None:
    return None if tie else "a"


def _harmless_contrarian(prompt: str, a: str, b: str, source: str, tie: bool) -> Choice | None:
    if tie:
        return None
    return "b" if source == "harmless" else "a"


def _concise(prompt: str, a: str, b: str, source: str, tie: bool) -> Choice | None:
    wa, wb = word_count(a), word_count(b)
    if not length_clear(wa, wb):
        return None
    return "a" if wa < wb else "b"


def _detailed(prompt: str, a: str, b: str, source: str, tie: bool) -> Choice | None:
    wa, wb = word_count(a), word_count(b)
    if not length_clear(wa, wb):
        return None
    return "a" if wa > wb else "b"


def asks_question(text: str) -> bool:
    """Whether a response asks the user something: it contains a question mark."""
    return "?" in text


def _inquisitive(prompt: str, a: str, b: str, source: str, tie: bool) -> Choice | None:
    qa, qb = asks_question(a), asks_question(b)
    if qa == qb:
        return None
    return "a" if qa else "b"


def _assertive(prompt: str, a: str, b: str, source: str, tie: bool) -> Choice | None:
    qa, qb = asks_question(a), asks_question(b)
    if qa == qb:
        return None
    return "b" if qa else "a"


USER_TYPES: Registry[UserType] = Registry("user type")
for _t in (
    UserType("faithful", "prefers the dataset's chosen response (undefined on UF ties)", _faithful),
    UserType(
        "harmless_contrarian",
        "prefers the rejected response on HH harmless-base pairs, the chosen one elsewhere",
        _harmless_contrarian,
    ),
    UserType("concise", "prefers the shorter response (length-clear pairs only)", _concise),
    UserType("detailed", "prefers the longer response (length-clear pairs only)", _detailed),
    UserType(
        "inquisitive",
        "prefers the response that asks a question (pairs where exactly one contains '?')",
        _inquisitive,
    ),
    UserType("assertive", "prefers the response without a question (same pairs)", _assertive),
):
    USER_TYPES.register(_t.name, _t, help=_t.description)


def get_user_type(name: str) -> UserType:
    """The user type registered as ``name`` (unknown names list the available ones)."""
    return USER_TYPES.get(name)
