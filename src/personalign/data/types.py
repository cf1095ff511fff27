"""Frozen domain records shared by every method.

Opinion data: :class:`Question`, :class:`Opinion`, :class:`Profile`, :class:`User`,
:class:`UserBase`, and the per-user :class:`UserSplit` a personalizer receives (and nothing else).
Preference data: :class:`PreferencePair`, :class:`PreferenceUser`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Question:
    """A multiple-choice question. ``options`` are display texts; ``option_values`` keep the
    original values when the source stored them as numbers (e.g. ``0.0 … 10.0`` scales).
    ``ordinals`` gives each option's ordinal value (``None`` for non-ordinal options such as
    ``Refused``). Hashable (``meta`` is left out of the hash)."""

    id: str
    text: str
    options: tuple[str, ...]
    option_values: tuple[Any, ...] | None = None
    ordinals: tuple[float | None, ...] | None = None
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    def __post_init__(self) -> None:
        if not self.options:
            raise ValueError(f"question {self.id!r} has no options")


@dataclass(frozen=True)
class Opinion:
    """A user's answer: the chosen option index of ``question_id``. ``distribution`` holds the full
    answer distribution when the "user" is a group or a country."""

    question_id: str
    choice: int
    distribution: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Profile:
    """Named attributes (only those known: unknown ones are absent, never invented) plus optional
    free text."""

    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    text: str | None = None

    def describe(self) -> str:
        """``field: value; …`` over known attributes, then the free text."""
        parts = [f"{k}: {v}" for k, v in self.attributes.items()]
        if self.text:
            parts.append(self.text)
        return "; ".join(parts)

    @property
    def is_empty(self) -> bool:
        return not self.attributes and not self.text


@dataclass(frozen=True)
class User:
    id: str
    profile: Profile
    opinions: tuple[Opinion, ...]
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class LabeledQuestion:
    """One of a user's items inside a :class:`UserSplit`: the question and the user's answer."""

    question: Question
    answer: int
    distribution: tuple[float, ...] | None = None


@dataclass(frozen=True)
class UserSplit:
    """Everything a personalizer may see about one user, and the user's held-out test items.

    ``train`` holds the ``k`` opinions a method may learn from. ``test`` is for the evaluator: a
    method's ``predict`` receives only ``[item.question for item in test]``. The split carries no
    reference to the dataset or any other user.
    """

    user_id: str
    profile: Profile
    train: tuple[LabeledQuestion, ...]
    test: tuple[LabeledQuestion, ...]
    dataset: str = ""

    @property
    def test_questions(self) -> tuple[Question, ...]:
        return tuple(item.question for item in self.test)

    def for_training(self) -> UserSplit:
        """This split with the test items removed: what the evaluator hands to ``fit``."""
        return UserSplit(self.user_id, self.profile, self.train, (), self.dataset)


@dataclass(frozen=True)
class PreferencePair:
    """``chosen`` was preferred over ``rejected`` as a response to ``prompt``."""

    prompt: str
    chosen: str
    rejected: str
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class PreferenceUser:
    id: str
    pairs: tuple[PreferencePair, ...]


@dataclass(frozen=True)
class UserBase:
    """A dataset of users: the questions (by id) plus the users, with lookups.

    Summary statistics live in :mod:`personalign.data.stats`.
    """

    name: str
    questions: Mapping[str, Question]
    users: tuple[User, ...]
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def user(self, user_id: str) -> User:
        for u in self.users:
            if u.id == user_id:
                return u
        raise KeyError(f"unknown user {user_id!r} in {self.name}")

    def question(self, question_id: str) -> Question:
        try:
            return self.questions[question_id]
        except KeyError:
            raise KeyError(f"unknown question {question_id!r} in {self.name}") from None
