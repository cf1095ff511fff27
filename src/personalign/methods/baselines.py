"""Baseline personalization methods (spec §5), on the same answering LM, rendering and scoring as
Fermi (:func:`personalign.lm.chat.render_choice`, letter log-probabilities).

* :class:`ZeroShot` — no system turn.
* :class:`ProfilePrompt` — the seed ``S1`` persona built from the profile.
* :class:`FewShot` — "Here are answers you gave before:" plus the user's ``k`` most similar
  training opinions (the embedder Retrieval-of-Prompt uses); with ``with_profile`` it is
  ``profile+few-shot`` (``S1`` first).
* :class:`GroupMajority` — **not an LLM method, and exempt from the privacy invariant**: it
  answers with the population-majority option from aggregate data of *other people*
  (``MethodContext.reference``); where no aggregate exists it gives ``pred=None`` and uniform
  probabilities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from personalign.data.types import LabeledQuestion, Profile, Question, UserSplit
from personalign.embed.base import Embedder
from personalign.fermi.prompts import opinion_line, profile_seed
from personalign.fermi.rop import nearest, question_text, similarity_matrix
from personalign.lm.base import LanguageModel
from personalign.lm.chat import render_choice
from personalign.methods.base import Prediction
from personalign.methods.registry import MethodContext

FEW_SHOT_HEADER = "Here are answers you gave before:"


class _PromptBaseline:
    """Shared shape: ``fit`` keeps the user's profile and training items; ``predict`` renders one
    system prompt per question and scores all questions in one batch."""

    name: ClassVar[str] = ""

    def __init__(self, answer_lm: LanguageModel) -> None:
        self.answer_lm = answer_lm

    def fit(self, split: UserSplit) -> Self:
        """Keep ``split.profile`` and ``split.train`` (never the test items)."""
        self.user_id_ = split.user_id
        self.profile_: Profile = split.profile
        self.train_: tuple[LabeledQuestion, ...] = tuple(split.train)
        return self

    def _systems(self, questions: Sequence[Question]) -> list[tuple[str | None, dict[str, Any]]]:
        raise NotImplementedError

    def predict(self, questions: Sequence[Question]) -> list[Prediction]:
        if not hasattr(self, "train_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(split) first")
        questions = list(questions)
        if not questions:
            return []
        systems = self._systems(questions)
        requests = [render_choice(q.text, q.options, s) for q, (s, _) in zip(questions, systems, strict=True)]
        results = self.answer_lm.score_choices(requests)
        out = []
        for q, res, (system, info) in zip(questions, results, systems, strict=True):
            info = {"method": self.name, "system": system, "letter_mass": res.letter_mass, **info}
            out.append(Prediction(question_id=q.id, pred=res.pred, probs=tuple(res.probs), info=info))
        return out


class ZeroShot(_PromptBaseline):
    """No persona: the model's own answer."""

    name = "zero-shot"

    def _systems(self, questions: Sequence[Question]) -> list[tuple[str | None, dict[str, Any]]]:
        return [(None, {}) for _ in questions]


class ProfilePrompt(_PromptBaseline):
    """The profile persona ``S1`` (Santurkar et al. style)."""

    name = "profile"

    def _systems(self, questions: Sequence[Question]) -> list[tuple[str | None, dict[str, Any]]]:
        system = profile_seed(self.profile_)
        return [(system, {}) for _ in questions]


class FewShot(_PromptBaseline):
    """The user's ``k`` most similar training opinions as demonstrations (optionally after ``S1``).

    Args:
        answer_lm: the answering model.
        embedder: the sentence embedder used to retrieve similar training questions.
        k: how many opinions to show (Default 5).
        with_profile: put the ``S1`` persona first (``profile+few-shot``).
    """

    def __init__(
        self, answer_lm: LanguageModel, embedder: Embedder, k: int = 5, with_profile: bool = False
    ) -> None:
        super().__init__(answer_lm)
        if embedder is None:
            raise ValueError("few-shot baselines need an embedder to retrieve similar opinions")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.embedder = embedder
        self.k = k
        self.with_profile = with_profile

    @property
    def name(self) -> str:  # type: ignore[override]
        return "profile+few-shot" if self.with_profile else "few-shot"

    def fit(self, split: UserSplit) -> Self:
        super().fit(split)
        self.train_emb_: np.ndarray | None = (
            self.embedder.encode([question_text(it.question) for it in self.train_]) if self.train_ else None
        )
        return self

    def _systems(self, questions: Sequence[Question]) -> list[tuple[str | None, dict[str, Any]]]:
        head = profile_seed(self.profile_) + "\n" if self.with_profile else ""
        if self.train_emb_ is None:
            return [(head.strip() or None, {"demonstrations": []}) for _ in questions]
        sims = similarity_matrix(self.embedder.encode([question_text(q) for q in questions]), self.train_emb_)
        out: list[tuple[str | None, dict[str, Any]]] = []
        for row in sims:
            ids = [i for i, _ in nearest(row, self.k)]
            demos = "\n".join(opinion_line(self.train_[i]) for i in ids)
            out.append(
                (
                    f"{head}{FEW_SHOT_HEADER}\n{demos}",
                    {"demonstrations": [self.train_[i].question.id for i in ids]},
                )
            )
        return out


class GroupMajority:
    """Population-majority option per question, from aggregate data of other people.

    **Exempt from the privacy invariant** (it reads ``reference``, population aggregates, by
    design); reported as a reference row, never as a personalization method. Questions without an
    aggregate get ``pred=None`` and uniform probabilities (``info["covered"] = False``).
    """

    name = "group-majority"
    uses_population_data = True

    def __init__(self, reference: Mapping[str, Sequence[float]] | None) -> None:
        self.reference = dict(reference or {})

    def fit(self, split: UserSplit) -> Self:
        self.user_id_ = split.user_id
        return self

    def predict(self, questions: Sequence[Question]) -> list[Prediction]:
        out = []
        for q in questions:
            n = len(q.options)
            dist = self.reference.get(q.id)
            info: dict[str, Any] = {"method": self.name, "exempt_from_privacy_invariant": True}
            if dist is None or len(dist) != n or sum(dist) <= 0:
                info["covered"] = False
                out.append(Prediction(q.id, None, tuple(1.0 / n for _ in range(n)), info))
                continue
            total = float(sum(dist))
            probs = tuple(float(x) / total for x in dist)
            rounded = [round(p, 6) for p in probs]
            pred = max(range(n), key=lambda j: (rounded[j], -j))
            info["covered"] = True
            out.append(Prediction(q.id, pred, probs, info))
        return out


# -- factories registered in personalign.methods --------------------------------------------------


def _answer_lm(context: MethodContext, method: str) -> LanguageModel:
    if context.answer_lm is None:
        raise ValueError(f"method {method!r} needs an answering LM")
    return context.answer_lm


def make_zero_shot(context: MethodContext) -> ZeroShot:
    """Build the zero-shot baseline."""
    return ZeroShot(_answer_lm(context, "zero-shot"))


def make_profile(context: MethodContext) -> ProfilePrompt:
    """Build the profile-persona baseline."""
    return ProfilePrompt(_answer_lm(context, "profile"))


def make_few_shot(context: MethodContext) -> FewShot:
    """Build the few-shot baseline (option ``k``, Default 5)."""
    return FewShot(_answer_lm(context, "few-shot"), context.embedder, k=int(context.options.get("k", 5)))


def make_profile_few_shot(context: MethodContext) -> FewShot:
    """Build the profile+few-shot baseline (option ``k``, Default 5)."""
    lm = _answer_lm(context, "profile+few-shot")
    return FewShot(lm, context.embedder, k=int(context.options.get("k", 5)), with_profile=True)


def make_group_majority(context: MethodContext) -> GroupMajority:
    """Build the group-majority reference (uses population aggregates; exempt from privacy)."""
    return GroupMajority(context.reference)
