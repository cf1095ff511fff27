"""Splits: reproducible per user whatever the order or subset of users, insufficient users handled
clearly, and the privacy invariant at the data level."""

from __future__ import annotations

import dataclasses
import random

import pytest

from personalign.data import (
    InsufficientDataError,
    LabeledQuestion,
    Opinion,
    Profile,
    Question,
    User,
    UserBase,
    UserSplit,
    split_user,
    split_users,
)
from personalign.data.split import user_seed


def _key(s: UserSplit):
    return (
        s.user_id,
        [(i.question.id, i.answer) for i in s.train],
        [(i.question.id, i.answer) for i in s.test],
    )


def test_split_sizes_and_partition(real_users):
    for u in real_users.users[:50]:
        s = split_user(u, real_users.questions, k=15, seed=0, dataset="opinionqa-users")
        assert len(s.train) == 15 and len(s.test) == len(u.opinions) - 15
        ids = [i.question.id for i in s.train + s.test]
        assert sorted(ids) == sorted(o.question_id for o in u.opinions)
        assert len(set(ids)) == len(ids)


def test_splits_stable_under_reordering_and_subsetting(real_users):
    full = {s.user_id: _key(s) for s in split_users(real_users, k=15, seed=0)}
    users = list(real_users.users)
    random.Random(1).shuffle(users)
    subset = users[:37]
    sub_base = UserBase(real_users.name, real_users.questions, tuple(subset))
    for s in split_users(sub_base, k=15, seed=0):
        assert _key(s) == full[s.user_id]
    # the order of a user's own opinions does not matter either
    u = real_users.users[0]
    shuffled = User(u.id, u.profile, tuple(reversed(u.opinions)), u.meta)
    assert _key(split_user(shuffled, real_users.questions, 15, 0, real_users.name)) == full[u.id]


def test_split_depends_on_seed_dataset_and_user(real_users):
    u = real_users.users[0]
    base = _key(split_user(u, real_users.questions, 15, 0, "a"))
    assert _key(split_user(u, real_users.questions, 15, 1, "a")) != base
    assert _key(split_user(u, real_users.questions, 15, 0, "b")) != base
    assert user_seed(0, "a", "1") == user_seed(0, "a", "1") != user_seed(0, "a", "2")


def test_max_test_caps_the_test_set(real_goqa):
    splits = split_users(real_goqa, k=15, seed=0, max_test=50)
    assert len(splits) == len(real_goqa.users)
    assert all(len(s.train) == 15 and len(s.test) <= 50 for s in splits)
    full = {s.user_id: s for s in split_users(real_goqa, k=15, seed=0)}
    for s in splits:  # the cap keeps a prefix of the uncapped test order
        assert [i.question.id for i in s.test] == [i.question.id for i in full[s.user_id].test][:50]


def _tiny_base(n_opinions: list[int]) -> UserBase:
    q = {f"q{i}": Question(f"q{i}", f"Question {i}?", ("Yes", "No", "Refused")) for i in range(10)}
    users = tuple(
        User(f"u{j}", Profile(), tuple(Opinion(f"q{i}", i % 3) for i in range(n)))
        for j, n in enumerate(n_opinions)
    )
    return UserBase("tiny", q, users)


def test_users_with_too_few_opinions():
    ub = _tiny_base([3, 10, 6])
    with pytest.raises(InsufficientDataError) as e:
        split_user(ub.users[0], ub.questions, k=5)
    assert "u0" in str(e.value) and "at least k + min_test = 6" in str(e.value)
    result = split_users(ub, k=5)
    assert [s.user_id for s in result] == ["u1", "u2"]
    assert list(result.skipped) == ["u0"]
    with pytest.raises(InsufficientDataError):
        split_users(ub, k=5, on_insufficient="raise")
    # drop_refused can make a user insufficient too
    assert "u2" in split_users(ub, k=5, drop_refused=True).skipped


def test_privacy_a_split_exposes_nothing_of_other_users(real_groups):
    """A UserSplit holds only its own user's items: no reference to the user base or another user."""
    ub = real_groups
    target = ub.users[3]
    split = split_user(target, ub.questions, k=15, seed=0, dataset=ub.name)
    own = {o.question_id: o for o in target.opinions}
    others = [u for u in ub.users if u.id != target.id]

    seen_ids: set[int] = set()
    other_opinion_ids = {id(o) for u in others for o in u.opinions}

    def walk(obj, depth=0):
        """Every object reachable from the split."""
        if id(obj) in seen_ids or depth > 20:
            return
        seen_ids.add(id(obj))
        assert obj is not ub and not isinstance(obj, UserBase)
        assert not (isinstance(obj, User) and obj.id != target.id)
        assert id(obj) not in other_opinion_ids
        yield obj
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                yield from walk(getattr(obj, f.name), depth + 1)
        elif isinstance(obj, dict) or hasattr(obj, "items"):
            for k, v in obj.items():
                yield from walk(k, depth + 1)
                yield from walk(v, depth + 1)
        elif isinstance(obj, list | tuple | set | frozenset):
            for v in obj:
                yield from walk(v, depth + 1)

    reachable = list(walk(split))
    assert split.profile == target.profile
    for item in (x for x in reachable if isinstance(x, LabeledQuestion)):
        mine = own[item.question.id]  # every question is one this user answered
        assert item.answer == mine.choice and item.distribution == mine.distribution
    # no other user's answer distribution appears anywhere in the split
    other_dists = {o.distribution for u in others for o in u.opinions}
    own_dists = {o.distribution for o in target.opinions}
    float_tuples = [
        x for x in reachable if isinstance(x, tuple) and x and all(isinstance(v, float) for v in x)
    ]
    leaked = [x for x in float_tuples if x in other_dists and x not in own_dists]
    assert leaked == []
    # question metadata carries no user data
    assert all(set(i.question.meta) <= {"wave"} for i in split.train + split.test)
    # for_training drops the held-out answers
    fit_view = split.for_training()
    assert fit_view.test == () and fit_view.train == split.train
