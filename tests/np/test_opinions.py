"""Opinions as preferences: conversion to pairs, the by-user partition, the episode source, the
``np-btl`` method (privacy: never trained on evaluated users, never reads test answers)."""

from __future__ import annotations

import json
from types import MappingProxyType

import numpy as np
import pytest

from personalign.data.types import LabeledQuestion, Opinion, Profile, Question, User, UserBase, UserSplit
from personalign.embed.hashing import HashingEmbedder
from personalign.methods.registry import METHODS, MethodContext
from personalign.np.features import TextFeaturizer
from personalign.np.opinions import (
    TRAINING_USERS_FILE,
    NPBTLPersonalizer,
    OpinionEpisodeSource,
    OpinionTrainConfig,
    PrivacyError,
    labeled_to_text_pairs,
    load_bundle,
    make_np_btl,
    opinion_features,
    opinion_pairs,
    train_opinions,
    user_partition,
)


class RecordingEmbedder(HashingEmbedder):
    def __init__(self) -> None:
        super().__init__(16)
        self.seen: list[str] = []

    def encode(self, texts):
        self.seen += list(texts)
        return super().encode(texts)


def toy_userbase(n_users: int = 30, n_q: int = 8) -> UserBase:
    qs = {
        f"q{j}": Question(f"q{j}", f"Question {j} about topic {j % 3}?", ("Yes", "No", "Maybe", "Refused"))
        for j in range(n_q)
    }
    users = []
    for i in range(n_users):
        lean = i % 2  # two latent camps answer opposite ways
        ops = tuple(Opinion(f"q{j}", (lean + j) % 2) for j in range(n_q))
        users.append(User(f"u{i}", Profile(), ops, MappingProxyType({"topic": "T"})))
    return UserBase("toy", MappingProxyType(qs), tuple(users))


def test_opinion_pairs_answer_over_every_other_option():
    assert opinion_pairs(4, 2) == [(2, 0), (2, 1), (2, 3)]
    assert opinion_pairs(4, 0, skip=[3]) == [(0, 1), (0, 2)]
    with pytest.raises(ValueError, match="not an option index"):
        opinion_pairs(3, 3)


def test_labeled_to_text_pairs_skips_refusals():
    q = Question("q", "Do you agree?", ("Agree", "Disagree", "Refused"))
    assert labeled_to_text_pairs([LabeledQuestion(q, 1)]) == [("Do you agree?", "Disagree", "Agree")]
    assert labeled_to_text_pairs([LabeledQuestion(q, 2)]) == []  # a refusal is no preference
    assert len(labeled_to_text_pairs([LabeledQuestion(q, 1)], drop_refused=False)) == 2


def test_partition_holds_out_the_harness_user_set_deterministically():
    from personalign.data.split import select_users

    ub = toy_userbase(30)
    part = user_partition(ub)
    held = {u.id for u in select_users(ub, "strat10", seed=0).users}
    assert set(part["eval"]) == held and len(held) == 10
    assert not (set(part["train"]) | set(part["val"])) & held
    assert set(part["train"]) | set(part["val"]) | held == {u.id for u in ub.users}
    reordered = UserBase(ub.name, ub.questions, tuple(reversed(ub.users)))
    assert user_partition(reordered) == part


def test_partition_also_holds_out_explicit_users():
    ub = toy_userbase(30)
    base = user_partition(ub)
    extra = sorted(base["train"])[:3]
    part = user_partition(ub, holdout_users=extra)
    assert set(part["eval"]) == set(base["eval"]) | set(extra)
    assert not set(extra) & (set(part["train"]) | set(part["val"]))
    with pytest.raises(ValueError, match="not in"):
        user_partition(ub, holdout_users=["nobody"])


def test_partition_on_the_real_respondents(data_dir):
    from personalign.data.opinionqa import load_opinionqa_users

    ub = load_opinionqa_users(data_dir)
    part = user_partition(ub)
    assert len(part["eval"]) == 150  # strat10: 10 users per topic x 15 topics
    assert len(part["train"]) + len(part["val"]) == 270
    assert not set(part["eval"]) & (set(part["train"]) | set(part["val"]))


def test_episodes_draw_only_split_users_and_keep_questions_disjoint():
    ub = toy_userbase(30)
    part = user_partition(ub)
    fz = TextFeaturizer(HashingEmbedder(16))
    src = OpinionEpisodeSource(ub, {"train": part["train"], "val": part["val"]}, opinion_features(ub, fz))
    assert set(src.split_users("train")) == set(part["train"])
    with pytest.raises(ValueError, match="unknown split 'eval'"):
        src.split_users("eval")
    rng = np.random.default_rng(0)
    for _ in range(20):
        ep = src.sample_episode(rng, "train", 0, 3, 4, False)
        assert not set(ep.context_ids) & set(ep.target_ids)
        assert ep.context.shape == (3 * 2, 2, 32)  # 3 questions x 2 non-refusal alternatives
        assert ep.targets.shape == (4 * 2, 2, 32)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("np-opinions")
    cfg = OpinionTrainConfig(
        embedder="hashing",
        epochs=1,
        episodes_per_epoch=64,
        batch_episodes=16,
        max_context=4,
        num_targets=3,
        eval_every=2,
        hidden=32,
        num_threads=1,
    )
    train_opinions(out, cfg, userbase=toy_userbase(30), embedder=HashingEmbedder(16))
    return out


def test_training_never_uses_evaluated_users(trained_dir):
    info = json.loads((trained_dir / TRAINING_USERS_FILE).read_text())
    part = user_partition(toy_userbase(30))
    assert info == part
    assert not set(info["eval"]) & (set(info["train"]) | set(info["val"]))
    meta = json.loads((trained_dir / "model.json").read_text())["metadata"]
    assert meta["embedder_id"] == "hashing-v1-16" and meta["task"] == "opinions"


def test_method_refuses_training_users_and_reads_only_known_answers(trained_dir):
    ub = toy_userbase(30)
    part = user_partition(ub)
    rec = RecordingEmbedder()
    bundle = load_bundle(trained_dir, rec)
    method = NPBTLPersonalizer(bundle)
    train_user = part["train"][0]
    with pytest.raises(PrivacyError, match="trained on"):
        method.fit(UserSplit(train_user, Profile(), (), ()))
    q = ub.questions
    canary = Question("qc", "CANARY-QUESTION", ("CANARY-ANSWER", "other"))
    split = UserSplit(
        part["eval"][0], Profile(), (LabeledQuestion(q["q0"], 1),), (LabeledQuestion(canary, 0),)
    )
    rec.seen.clear()
    method.fit(split)
    assert rec.seen and not any("CANARY" in t for t in rec.seen)  # test items are never read by fit
    preds = method.predict([q["q1"], q["q2"]])
    for p in preds:
        assert sum(p.probs) == pytest.approx(1.0)
        assert p.probs[3] == 0.0  # "Refused" is never predicted
        assert p.pred in (0, 1, 2)


def test_registered_factory_uses_the_model_option(trained_dir):
    import personalign.methods  # noqa: F401 - registers np-btl

    assert "np-btl" in METHODS
    factory = METHODS.get("np-btl")
    method = factory(MethodContext(options={"np_model": str(trained_dir)}, embedder=HashingEmbedder(16)))
    assert isinstance(method, NPBTLPersonalizer)
    assert make_np_btl(MethodContext(options={"np_model": str(trained_dir)})).bundle.training_users


def test_population_columns_of_the_population_variant():
    from personalign.np.opinions import OptionFeaturizer, population_columns

    q = Question("q", "Agree?", ("Yes", "No", "Refused"))
    cols = population_columns(q, {"q": (30.0, 10.0, 0.0)})
    np.testing.assert_allclose(cols[:, 0], 1.0)
    np.testing.assert_allclose(cols[:, 1], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(cols[:, 2], np.log(np.array([0.75, 0.25, 0.0]) + 1e-3), rtol=1e-6)
    assert not population_columns(q, {}).any()  # no aggregate: all zeros
    opts = OptionFeaturizer(TextFeaturizer(HashingEmbedder(16)), {"q": (1.0, 1.0, 0.0)})
    assert opts.dim == 35 and opts(q).shape == (3, 35)


def test_evaluation_covers_exactly_the_held_out_users(trained_dir, data_dir):
    from personalign.np.opinions import evaluate_opinions

    ub = toy_userbase(30)
    res = evaluate_opinions(trained_dir, userbase=ub, data_dir=data_dir, embedder=HashingEmbedder(16), k=3)
    part = user_partition(ub)
    assert res["per_user"]["ids"] == part["eval"] and res["users"] == 10
    for name in ("np-btl", "np-btl (m=0)", "population-majority", "group-majority"):
        acc = res["accuracy"][name]
        assert 0.0 <= acc["mean"] <= 1.0 and acc["n"] == 10
    # the toy questions have no Pew aggregate: group-majority never answers, so it scores 0
    assert res["accuracy"]["group-majority"]["mean"] == 0.0
    assert res["accuracy_covered"]["np-btl"]["n"] == 0
