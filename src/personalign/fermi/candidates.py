"""Parsing candidate prompts out of optimizer replies, and validating them with counted reasons.

Parsing (spec §3): tagged ``<prompt>…</prompt>`` spans first (a final unclosed tag runs to the end
of the reply, as when a stop string cut the closing tag), then OPRO-style ``[…]`` spans, then the
whole reply if it is a single paragraph. Validation rejects a candidate that is empty, shorter than
``min_words`` or longer than ``max_words`` words, holds template debris, or duplicates an archived
(or already accepted) prompt.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from personalign.fermi.prompts import SLOT_NOTE, normalize_prompt

REJECT_REASONS = ("unparseable", "empty", "too_short", "too_long", "template_debris", "duplicate")
_TAG = re.compile(r"<prompt>(.*?)(?:</prompt>|(?=<prompt>)|\Z)", re.DOTALL | re.IGNORECASE)
_BRACKET = re.compile(r"\[([^\[\]]*)\]", re.DOTALL)
_DEBRIS = re.compile(
    r"<\s*/?\s*prompt\s*>|\bScore:|\bPrompt \d+\b|\{|Answers it got wrong|" + re.escape(SLOT_NOTE),
    re.IGNORECASE,
)


def parse_candidates(reply: str) -> list[str]:
    """Candidate texts in ``reply`` (stripped; may include empty ones, for validation to count)."""
    if re.search(r"<prompt>", reply, re.IGNORECASE):
        return [m.group(1).strip() for m in _TAG.finditer(reply)]
    spans = _BRACKET.findall(reply)
    if spans:
        return [s.strip() for s in spans]
    text = reply.strip()
    if text and not re.search(r"\n\s*\n", text):
        return [text]
    return []


@dataclass(frozen=True)
class CandidateOutcome:
    """One parsed candidate and what validation said (``reason`` is ``None`` when accepted)."""

    text: str
    reason: str | None

    @property
    def accepted(self) -> bool:
        return self.reason is None

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "reason": self.reason}


def validate_candidate(text: str, seen_keys: Container[str], *, min_words: int, max_words: int) -> str | None:
    """The rejection reason for ``text``, or ``None`` if it is a valid new prompt.

    ``seen_keys`` holds the dedup keys (:func:`~personalign.fermi.prompts.normalize_prompt`) of
    every prompt already archived or accepted for this user.
    """
    text = text.strip()
    if not text:
        return "empty"
    if _DEBRIS.search(text):
        return "template_debris"
    n = len(text.split())
    if n < min_words:
        return "too_short"
    if n > max_words:
        return "too_long"
    if normalize_prompt(text) in seen_keys:
        return "duplicate"
    return None
