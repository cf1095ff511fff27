"""Answer options: numeric options kept as text plus their original value, refusal detection,
validated :class:`Question` construction and answer distributions (modes, ties)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from personalign.data.readers import Where, as_number
from personalign.data.types import Question

_REFUSED = re.compile(r"\brefused\b", re.IGNORECASE)
DISTRIBUTION_TOLERANCE = 0.02
"""How far from 1 a probability distribution's sum may be (sources round to 3–6 decimals)."""


def is_refused(option: str) -> bool:
    """Whether an option is a refusal: its text contains the word "refused" (``Refused``,
    ``DK/Refused``, ``No answer/refused``, …)."""
    return bool(_REFUSED.search(option))


def option_text(value: Any) -> str:
    """Display text of an option value: strings as they are, integral numbers without a trailing
    ``.0`` (``10.0`` -> ``"10"``), other numbers by ``repr``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(type(value).__name__)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError("non-finite number")
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def parse_options(
    values: Any, where: Where, field: str = "options"
) -> tuple[tuple[str, ...], tuple[Any, ...] | None]:
    """``(texts, original values or None)`` for a list of options; rejects empty lists, blank or
    non-scalar options and options whose texts collide."""
    if not isinstance(values, list | tuple) or not values:
        raise where.error(
            "empty or missing option list", field=field, expected="a non-empty list of options", got=values
        )
    texts = []
    for i, v in enumerate(values):
        try:
            t = option_text(v)
        except TypeError:
            raise where.error(
                "bad option", field=f"{field}[{i}]", expected="a string or a number", got=v
            ) from None
        if not t.strip():
            raise where.error("blank option", field=f"{field}[{i}]", expected="a non-empty string")
        texts.append(t)
    if len(set(texts)) != len(texts):
        dup = next(t for t in texts if texts.count(t) > 1)
        raise where.error(f"duplicated option {dup!r}", field=field, expected="distinct options")
    numeric = any(not isinstance(v, str) for v in values)
    return tuple(texts), (tuple(values) if numeric else None)


def make_question(
    qid: str,
    text: str,
    options: Any,
    where: Where,
    *,
    ordinals: Sequence[float | None] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Question:
    """A validated :class:`Question`."""
    if not isinstance(qid, str) or not qid.strip():
        raise where.error("bad question id", field="id", expected="a non-empty string", got=qid)
    if not isinstance(text, str) or not text.strip():
        raise where.error("bad question text", field="text", expected="a non-empty string", got=text)
    texts, values = parse_options(options, where)
    return Question(
        id=qid,
        text=text,
        options=texts,
        option_values=values,
        ordinals=tuple(ordinals) if ordinals is not None else None,
        meta=MappingProxyType(dict(meta or {})),
    )


def parse_distribution(
    values: Any, n_options: int, where: Where, field: str = "distribution"
) -> tuple[float, ...]:
    """A list of ``n_options`` finite non-negative numbers summing to 1 (within
    :data:`DISTRIBUTION_TOLERANCE`) or to exactly 0; returned as given (not renormalized)."""
    if not isinstance(values, list | tuple) or len(values) != n_options:
        raise where.error(
            "distribution does not match the options",
            field=field,
            expected=f"a list of {n_options} numbers (one per option)",
            got=values,
        )
    dist = tuple(as_number(v, where, f"{field}[{i}]", nonneg=True) for i, v in enumerate(values))
    total = sum(dist)
    if total != 0 and abs(total - 1.0) > DISTRIBUTION_TOLERANCE:
        raise where.error(
            "distribution does not sum to 1",
            field=field,
            expected=f"a sum within {DISTRIBUTION_TOLERANCE} of 1 (or all zeros)",
            got=round(total, 6),
        )
    return dist


def modal_index(dist: Sequence[float]) -> int | None:
    """The index of the largest value, or ``None`` when two or more options tie for it."""
    best = max(dist)
    first = dist.index(best)
    if any(d == best for d in dist[first + 1 :]):
        return None
    return first


def normalized(counts: Sequence[float]) -> tuple[float, ...]:
    """Counts scaled to sum to 1."""
    total = float(sum(counts))
    return tuple(c / total for c in counts)
