"""Scored prompts, their ordering, and the deduplicated top-L memory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from personalign.fermi.prompts import PromptSpec


@dataclass(frozen=True)
class MisalignedRecord:
    """A training item a prompt got wrong: its index, question, the user's and the model's answer.

    ``model_answer`` is ``"(no valid answer)"`` when the answering model gave none.
    """

    index: int
    question: str
    user_answer: str
    model_answer: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "question": self.question,
            "user_answer": self.user_answer,
            "model_answer": self.model_answer,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MisalignedRecord:
        return cls(int(d["index"]), str(d["question"]), str(d["user_answer"]), str(d["model_answer"]))


@dataclass(frozen=True)
class ScoredPrompt:
    """A prompt scored on all of one user's training items.

    Attributes:
        spec: the prompt (text, origin, Ext slots).
        acc: exact-match accuracy on the training items.
        soft: mean log-probability of the user's answers (``-inf``-safe: floored at 1e-12).
        correct: per training item, whether the prediction matched (a row of ``C``).
        gold_logp: per training item, ``log p(a_i)`` (a row of ``S``).
        preds: per training item, the predicted option index (``None``: no valid answer).
        misaligned: the mis-aligned records, in index order.
        birth: creation order within the user's run (0 = first seed).
        round: the round in which it was scored.
        letter_mass: mean full-vocabulary probability on the option letters (below 0.5 the
            answering model mostly wants to say something else: a warning sign).
    """

    spec: PromptSpec
    acc: float
    soft: float
    correct: tuple[bool, ...]
    gold_logp: tuple[float, ...]
    preds: tuple[int | None, ...]
    misaligned: tuple[MisalignedRecord, ...]
    birth: int
    round: int
    letter_mass: float = 1.0

    @property
    def text(self) -> str:
        return self.spec.text

    @property
    def origin(self) -> str:
        return self.spec.origin

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def n_correct(self) -> int:
        return sum(self.correct)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "acc": self.acc,
            "soft": self.soft,
            "correct": [int(c) for c in self.correct],
            "gold_logp": list(self.gold_logp),
            "preds": list(self.preds),
            "misaligned": [m.to_dict() for m in self.misaligned],
            "birth": self.birth,
            "round": self.round,
            "letter_mass": self.letter_mass,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoredPrompt:
        return cls(
            spec=PromptSpec.from_dict(d["spec"]),
            acc=float(d["acc"]),
            soft=float(d["soft"]),
            correct=tuple(bool(c) for c in d["correct"]),
            gold_logp=tuple(float(x) for x in d["gold_logp"]),
            preds=tuple(None if p is None else int(p) for p in d["preds"]),
            misaligned=tuple(MisalignedRecord.from_dict(m) for m in d["misaligned"]),
            birth=int(d["birth"]),
            round=int(d["round"]),
            letter_mass=float(d.get("letter_mass", 1.0)),
        )


def sort_key(sp: ScoredPrompt, use_soft: bool = True) -> tuple[float, float, int]:
    """Higher is better: ``(acc, soft, -birth)``; ``(acc, 0, -birth)`` when ``use_soft`` is off."""
    return (round(sp.acc, 9), round(sp.soft, 9) if use_soft else 0.0, -sp.birth)


def update_memory(
    memory: Iterable[ScoredPrompt], new: Iterable[ScoredPrompt], L: int, use_soft: bool = True
) -> list[ScoredPrompt]:
    """The top-``L`` of ``memory + new`` by :func:`sort_key`, best first, one entry per dedup key
    (the better-keyed duplicate wins)."""
    best: dict[str, ScoredPrompt] = {}
    for sp in [*memory, *new]:
        cur = best.get(sp.key)
        if cur is None or sort_key(sp, use_soft) > sort_key(cur, use_soft):
            best[sp.key] = sp
    ranked = sorted(best.values(), key=lambda sp: sort_key(sp, use_soft), reverse=True)
    return ranked[:L]


def ascending(memory: Iterable[ScoredPrompt], use_soft: bool = True) -> list[ScoredPrompt]:
    """Memory ordered lowest score first (as the meta-prompt shows it)."""
    return sorted(memory, key=lambda sp: sort_key(sp, use_soft))
