"""Small builders shared by the Fermi tests."""

from __future__ import annotations

from personalign.data.types import LabeledQuestion, Profile, Question, UserSplit
from personalign.fermi.memory import MisalignedRecord, ScoredPrompt
from personalign.fermi.prompts import PromptSpec


def scored(
    text: str,
    acc: float,
    soft: float = -1.0,
    birth: int = 0,
    correct: tuple[bool, ...] = (),
    misaligned: tuple[MisalignedRecord, ...] = (),
    spec: PromptSpec | None = None,
) -> ScoredPrompt:
    """A ScoredPrompt with just the fields a test cares about."""
    n = len(correct)
    return ScoredPrompt(
        spec=spec or PromptSpec(text),
        acc=acc,
        soft=soft,
        correct=correct,
        gold_logp=tuple(-1.0 for _ in range(n)),
        preds=tuple(0 for _ in range(n)),
        misaligned=misaligned,
        birth=birth,
        round=1,
    )


def user(
    uid: str, questions: list[tuple[str, tuple[str, ...], int]], profile: dict | None = None
) -> UserSplit:
    """A UserSplit whose first items are train and the rest test (split at 2/3)."""
    items = tuple(
        LabeledQuestion(Question(f"{uid}-q{i}", text, opts), ans)
        for i, (text, opts, ans) in enumerate(questions)
    )
    k = max(1, 2 * len(items) // 3)
    return UserSplit(uid, Profile(attributes=profile or {}), items[:k], items[k:], "unit")
