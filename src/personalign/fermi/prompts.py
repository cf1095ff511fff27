"""Prompt specifications, the seed prompts S1/S2, and rendering a prompt into a system turn.

A :class:`PromptSpec` is a persona prompt text plus, for the Ext ``insert_opinions`` candidates,
structured *opinion slots* (indices of the user's training items to state) or a *retrieval slot*
(the ``k`` training opinions most similar to the question being answered). Slots are rendered per
question, **leave-one-out** when scoring training item ``i`` (item ``i`` is never shown while it is
being scored), and in full at test time.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from personalign.data.types import LabeledQuestion, Profile

UNKNOWN_VALUES = frozenset({"", "unknown", "nan", "none", "n/a", "na", "null"})
NEUTRAL_SEED = "Answer each survey question the way a typical respondent would."
OPINIONS_HEADER = "You previously answered:"
_PUNCT = re.compile(f"[{re.escape(string.punctuation)}“”‘’…→]")


def normalize_prompt(text: str) -> str:
    """Dedup key of a prompt text: lower-cased, punctuation stripped, whitespace folded."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def describe_profile(profile: Profile) -> str:
    """``field: value; …`` over known attributes (never "Unknown"), then the free text."""
    parts = [
        f"{k}: {v}" for k, v in profile.attributes.items() if str(v).strip().lower() not in UNKNOWN_VALUES
    ]
    if profile.text and profile.text.strip():
        parts.append(profile.text.strip().rstrip("."))
    return "; ".join(parts)


def profile_seed(profile: Profile) -> str:
    """Seed ``S1``: the ``profile`` baseline's persona prompt."""
    desc = describe_profile(profile)
    middle = f" {desc}." if desc else ""
    return f"You are answering a survey as the person described here.{middle} Answer as this person would."


@dataclass(frozen=True)
class PromptSpec:
    """A candidate prompt: ``text`` plus optional opinion or retrieval slots (Ext).

    Attributes:
        text: the persona prompt (the system turn, before any slot).
        origin: where it came from: ``seed:profile``, ``seed:neutral``, ``optimizer``,
            ``ext:misaligned``, ``ext:all`` or ``ext:retrieval``.
        opinions: indices into the user's training items to state as past answers.
        retrieval_k: if > 0, state the ``k`` training opinions most similar to each question.
    """

    text: str
    origin: str = "optimizer"
    opinions: tuple[int, ...] = ()
    retrieval_k: int = 0

    @property
    def key(self) -> str:
        """Dedup key: normalised text plus the slot signature."""
        key = normalize_prompt(self.text)
        if self.opinions:
            key += "|opinions:" + ",".join(map(str, self.opinions))
        if self.retrieval_k:
            key += f"|retrieve:{self.retrieval_k}"
        return key

    @property
    def has_slots(self) -> bool:
        return bool(self.opinions) or self.retrieval_k > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "origin": self.origin,
            "opinions": list(self.opinions),
            "retrieval_k": self.retrieval_k,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PromptSpec:
        return cls(
            text=str(d["text"]),
            origin=str(d.get("origin", "optimizer")),
            opinions=tuple(int(i) for i in d.get("opinions", ())),
            retrieval_k=int(d.get("retrieval_k", 0)),
        )


def seed_specs(profile: Profile, seeds: Sequence[str]) -> list[PromptSpec]:
    """The seed prompts named in ``seeds`` (``profile`` → S1, ``neutral`` → S2), in that order."""
    out = []
    for name in seeds:
        if name == "profile":
            out.append(PromptSpec(profile_seed(profile), origin="seed:profile"))
        elif name == "neutral":
            out.append(PromptSpec(NEUTRAL_SEED, origin="seed:neutral"))
        else:
            raise ValueError(f"unknown seed {name!r}; available: profile, neutral")
    return out


def opinion_line(item: LabeledQuestion) -> str:
    """``- {question} → {chosen option}``: how a past answer is stated in a prompt."""
    q = " ".join(item.question.text.split())
    return f"- {q} → {item.question.options[item.answer]}"


def render_system(
    spec: PromptSpec,
    train: Sequence[LabeledQuestion],
    exclude: int | None = None,
    retrieved: Sequence[int] = (),
) -> str:
    """The system turn for one question.

    ``exclude`` is the training item being scored (left out of the opinion slots); ``retrieved``
    are the training indices the retrieval slot shows for this question, most similar first (the
    caller already left ``exclude`` out of them).
    """
    shown = [i for i in spec.opinions if i != exclude]
    if spec.retrieval_k:
        shown += [i for i in retrieved if i != exclude and i not in shown][: spec.retrieval_k]
    if not shown:
        return spec.text
    lines = [opinion_line(train[i]) for i in shown]
    return spec.text + "\n" + OPINIONS_HEADER + "\n" + "\n".join(lines)


SLOT_NOTE = "past answers are appended to this prompt automatically)"


def display_text(spec: PromptSpec) -> str:
    """How a prompt appears in the meta-prompt: its text, then a line summarising its slots (the
    opinions themselves are not repeated there)."""
    if not spec.has_slots:
        return spec.text
    n = f"{spec.retrieval_k} most related" if spec.retrieval_k else f"{len(spec.opinions)}"
    return f"{spec.text}\n(+ {n} of the person's {SLOT_NOTE}"
