"""Scoring a prompt on all of one user's training items in one batched ``score_choices`` call."""

from __future__ import annotations

import math
from collections.abc import Sequence

from personalign.data.types import LabeledQuestion
from personalign.fermi.memory import MisalignedRecord, ScoredPrompt
from personalign.fermi.prompts import PromptSpec, render_system
from personalign.lm.base import ChoiceRequest, LanguageModel
from personalign.lm.chat import render_choice

NO_ANSWER = "(no valid answer)"


def training_requests(
    spec: PromptSpec,
    train: Sequence[LabeledQuestion],
    train_neighbours: Sequence[Sequence[int]] | None = None,
) -> list[ChoiceRequest]:
    """One request per training item; Ext slots rendered leave-one-out (item ``i`` never shown
    while item ``i`` is scored). ``train_neighbours[i]`` lists the other training items by
    decreasing similarity to item ``i`` (needed only for a retrieval slot)."""
    if spec.retrieval_k and train_neighbours is None:
        raise ValueError("a prompt with a retrieval slot needs the training items' neighbours")
    out = []
    for i, item in enumerate(train):
        retrieved = train_neighbours[i] if spec.retrieval_k and train_neighbours is not None else ()
        system = render_system(spec, train, exclude=i, retrieved=retrieved)
        out.append(render_choice(item.question.text, item.question.options, system))
    return out


def score_prompt(
    lm: LanguageModel,
    spec: PromptSpec,
    train: Sequence[LabeledQuestion],
    *,
    birth: int,
    round: int,
    train_neighbours: Sequence[Sequence[int]] | None = None,
) -> ScoredPrompt:
    """Score ``spec`` on every training item (one batched call) and derive acc, soft, C, S rows."""
    if not train:
        raise ValueError("cannot score a prompt without training items")
    results = lm.score_choices(training_requests(spec, train, train_neighbours))
    correct, gold, preds, mis = [], [], [], []
    for i, (item, res) in enumerate(zip(train, results, strict=True)):
        pred = res.pred
        ok = pred == item.answer
        correct.append(ok)
        preds.append(pred)
        gold.append(math.log(max(res.probs[item.answer], 1e-12)))
        if not ok:
            model_answer = item.question.options[pred] if pred is not None else NO_ANSWER
            mis.append(
                MisalignedRecord(
                    index=i,
                    question=item.question.text,
                    user_answer=item.question.options[item.answer],
                    model_answer=model_answer,
                )
            )
    n = len(train)
    return ScoredPrompt(
        spec=spec,
        acc=sum(correct) / n,
        soft=sum(gold) / n,
        correct=tuple(correct),
        gold_logp=tuple(gold),
        preds=tuple(preds),
        misaligned=tuple(mis),
        birth=birth,
        round=round,
        letter_mass=sum(r.letter_mass for r in results) / n,
    )
