"""Per-user train/test splits and user-set selection, reproducible from a seed and the user id.

A user's items are sorted by question id, then shuffled by a ``random.Random`` seeded with
``sha256(f"{seed}|{dataset}|{user_id}")``; the first ``k`` (after optionally removing refusals)
form ``train``, the next ``max_test`` (default: all) ``test``. Nothing depends on the order of
the users or on which other users were loaded.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from personalign.data.errors import InsufficientDataError
from personalign.data.options import is_refused
from personalign.data.types import LabeledQuestion, Question, User, UserBase, UserSplit

USER_SETS = ("all", "complete", "strat10")


def user_seed(seed: int, dataset: str, user_id: str) -> int:
    """The per-user seed: the first 8 bytes of ``sha256(f"{seed}|{dataset}|{user_id}")``."""
    digest = hashlib.sha256(f"{seed}|{dataset}|{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def split_user(
    user: User,
    questions: Mapping[str, Question],
    k: int = 15,
    seed: int = 0,
    dataset: str = "",
    drop_refused: bool | Callable[[str], bool] = False,
    max_test: int | None = None,
    min_test: int = 1,
) -> UserSplit:
    """Split one user's opinions: ``k`` for training, the rest (at most ``max_test``) for testing.

    ``drop_refused`` removes opinions whose chosen option is a refusal (``True``: per
    :func:`~personalign.data.options.is_refused`; or a predicate on the option text). Refusals are
    removed after the shuffle, so the permutation never depends on this option. A user left with
    fewer than ``k + min_test`` opinions raises :class:`InsufficientDataError`.

    The returned split holds copies of this user's own questions and answers only: no reference to
    the user base, to other users, or to their answers.
    """
    if k < 0 or min_test < 0 or (max_test is not None and max_test < 0):
        raise ValueError("k, min_test and max_test must be >= 0")
    items = sorted(user.opinions, key=lambda o: o.question_id)
    random.Random(user_seed(seed, dataset, user.id)).shuffle(items)
    if drop_refused:
        pred = is_refused if drop_refused is True else drop_refused
        items = [o for o in items if not pred(questions[o.question_id].options[o.choice])]
    if len(items) < k + min_test:
        raise InsufficientDataError(
            f"user {user.id!r} has {len(items)} usable opinions",
            record=user.id,
            expected=f"at least k + min_test = {k + min_test}",
        )
    labeled = [LabeledQuestion(questions[o.question_id], o.choice, o.distribution) for o in items]
    test = labeled[k:] if max_test is None else labeled[k : k + max_test]
    return UserSplit(user.id, user.profile, tuple(labeled[:k]), tuple(test), dataset)


@dataclass(frozen=True)
class SplitResult:
    """Splits of a user base, with the users left out for having too few opinions."""

    splits: tuple[UserSplit, ...]
    skipped: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    params: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.splits)

    def __len__(self) -> int:
        return len(self.splits)


def split_users(
    userbase: UserBase,
    k: int = 15,
    seed: int = 0,
    *,
    dataset: str | None = None,
    drop_refused: bool = False,
    max_test: int | None = None,
    min_test: int = 1,
    on_insufficient: str = "skip",
) -> SplitResult:
    """:func:`split_user` for every user. Users with too few opinions are skipped and listed in
    ``result.skipped`` (``on_insufficient="skip"``, the default) or raise (``"raise"``)."""
    if on_insufficient not in ("skip", "raise"):
        raise ValueError(f"unknown on_insufficient {on_insufficient!r}; available: raise, skip")
    name = userbase.name if dataset is None else dataset
    splits, skipped = [], {}
    for u in userbase.users:
        try:
            splits.append(split_user(u, userbase.questions, k, seed, name, drop_refused, max_test, min_test))
        except InsufficientDataError as e:
            if on_insufficient == "raise":
                raise
            skipped[u.id] = str(e)
    params = {
        "k": k,
        "seed": seed,
        "dataset": name,
        "drop_refused": drop_refused,
        "max_test": max_test,
        "min_test": min_test,
    }
    return SplitResult(tuple(splits), MappingProxyType(skipped), MappingProxyType(params))


def select_users(
    userbase: UserBase, user_set: str, seed: int = 0, per_group: int = 10, group_key: str = "topic"
) -> UserBase:
    """A user base restricted to a user set.

    * ``all``: every user.
    * ``complete``: users whose ``meta["profile_complete"]`` is true.
    * ``strat10``: per ``meta[group_key]`` (the topic), the ``per_group`` users with the smallest
      :func:`user_seed` (stable under reordering and subsetting).
    """
    if user_set not in USER_SETS:
        raise ValueError(f"unknown user set {user_set!r}; available: {', '.join(USER_SETS)}")
    users = list(userbase.users)
    if user_set == "complete":
        users = [u for u in users if u.meta.get("profile_complete") is True]
    elif user_set == "strat10":
        groups: dict[str, list[User]] = {}
        for u in users:
            groups.setdefault(str(u.meta.get(group_key, "")), []).append(u)
        keep = set()
        for members in groups.values():
            members.sort(key=lambda u: user_seed(seed, userbase.name, u.id))
            keep.update(u.id for u in members[:per_group])
        users = [u for u in users if u.id in keep]
    meta = {**userbase.meta, "user_set": user_set, "user_set_seed": seed}
    return UserBase(userbase.name, userbase.questions, tuple(users), MappingProxyType(meta))


def splits_record(result: SplitResult) -> dict[str, object]:
    """A JSON-ready record of splits: question ids and answer indices per user (no texts)."""
    return {
        "format": "personalign-splits",
        "format_version": 1,
        "params": dict(result.params),
        "users": [
            {
                "user_id": s.user_id,
                "train": [{"question_id": it.question.id, "answer": it.answer} for it in s.train],
                "test": [{"question_id": it.question.id, "answer": it.answer} for it in s.test],
            }
            for s in result.splits
        ],
        "skipped": dict(result.skipped),
    }
