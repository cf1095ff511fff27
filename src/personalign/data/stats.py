"""Summary statistics of a :class:`UserBase` (what ``personalign data info`` prints)."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from personalign.data.options import is_refused
from personalign.data.types import UserBase


@dataclass(frozen=True)
class UserBaseStats:
    """Counts and balances of a user base.

    Attributes:
        users, questions, opinions: totals (``questions`` is the whole bank).
        questions_answered: questions at least one user answered.
        opinions_per_user: (min, median, mean, max).
        profile_attributes: users holding each profile attribute.
        profile_complete: users holding every attribute any user holds (0 if none has any).
        profile_text: users with a free-text profile.
        options_per_question: (min, mean, max) over answered questions.
        chance_accuracy: mean of ``1 / |options|`` over all opinions.
        choice_position: share of opinions choosing option position 0, 1, … .
        refused: opinions whose chosen option is a refusal.
        majority_share: share of opinions equal to their question's most common answer in this base.
        with_distribution: opinions that carry an answer distribution.
    """

    users: int
    questions: int
    questions_answered: int
    opinions: int
    opinions_per_user: tuple[int, float, float, int]
    profile_attributes: dict[str, int]
    profile_complete: int
    profile_text: int
    options_per_question: tuple[int, float, int]
    chance_accuracy: float
    choice_position: dict[int, float]
    refused: int
    majority_share: float
    with_distribution: int

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def userbase_stats(userbase: UserBase) -> UserBaseStats:
    """Compute :class:`UserBaseStats` (one pass over the opinions)."""
    qs = userbase.questions
    per_user = [len(u.opinions) for u in userbase.users]
    attrs: Counter[str] = Counter()
    for u in userbase.users:
        attrs.update(u.profile.attributes.keys())
    complete = sum(1 for u in userbase.users if attrs and set(u.profile.attributes) >= set(attrs))
    answered: dict[str, Counter[int]] = {}
    positions: Counter[int] = Counter()
    refused = with_dist = 0
    chance = 0.0
    for u in userbase.users:
        for o in u.opinions:
            q = qs[o.question_id]
            answered.setdefault(o.question_id, Counter())[o.choice] += 1
            positions[o.choice] += 1
            chance += 1.0 / len(q.options)
            refused += is_refused(q.options[o.choice])
            with_dist += o.distribution is not None
    n = sum(per_user)
    n_opts = [len(qs[q].options) for q in answered]
    majority = sum(c.most_common(1)[0][1] for c in answered.values())
    return UserBaseStats(
        users=len(userbase.users),
        questions=len(qs),
        questions_answered=len(answered),
        opinions=n,
        opinions_per_user=(
            min(per_user),
            statistics.median(per_user),
            statistics.fmean(per_user),
            max(per_user),
        )
        if per_user
        else (0, 0.0, 0.0, 0),
        profile_attributes=dict(attrs.most_common()),
        profile_complete=complete,
        profile_text=sum(1 for u in userbase.users if u.profile.text),
        options_per_question=(min(n_opts), statistics.fmean(n_opts), max(n_opts)) if n_opts else (0, 0.0, 0),
        chance_accuracy=chance / n if n else 0.0,
        choice_position={p: positions[p] / n for p in sorted(positions)} if n else {},
        refused=refused,
        majority_share=majority / n if n else 0.0,
        with_distribution=with_dist,
    )
