"""Registered methods and the baselines' documented behaviour."""

from __future__ import annotations

import pytest

from personalign.data.types import LabeledQuestion, Profile, Question, UserSplit
from personalign.embed.hashing import HashingEmbedder
from personalign.fermi.methods import method_config
from personalign.lm.recording import RecordingLM
from personalign.lm.simulated import ScriptedOptimizerLM, SimulatedLM, simulated_users
from personalign.methods import METHODS, MethodContext, get_method
from personalign.methods.baselines import FEW_SHOT_HEADER, FewShot, GroupMajority
from personalign.registry import UnknownNameError

ALL = {
    "zero-shot",
    "profile",
    "few-shot",
    "profile+few-shot",
    "group-majority",
    "opro",
    "opro-rop",
    "fermi-no-rop",
    "fermi",
    "fermi+",
}
USER = simulated_users(1, seed=4)[0]


def ctx(**kw) -> MethodContext:
    base = {"answer_lm": SimulatedLM(), "optimizer_lm": ScriptedOptimizerLM(), "embedder": HashingEmbedder()}
    return MethodContext(**{**base, **kw})


def test_every_method_is_registered_and_unknown_names_list_them():
    assert set(METHODS.names()) >= ALL
    with pytest.raises(UnknownNameError, match=r"unknown method .fermi2.; available: .*fermi\+"):
        get_method("fermi2", ctx())


@pytest.mark.parametrize("name", sorted(ALL))
def test_each_method_fits_and_predicts(name):
    c = ctx(options={"T": 2, "K": 2}, reference={USER.test[0].question.id: (0.1, 0.2, 0.3, 0.3, 0.1)})
    preds = get_method(name, c).fit(USER.for_training()).predict(USER.test_questions)
    assert [p.question_id for p in preds] == [q.id for q in USER.test_questions]
    assert all(len(p.probs) == 5 and abs(sum(p.probs) - 1) < 1e-9 for p in preds)
    assert all(p.info["method"] for p in preds)


def test_method_configs_fix_their_identity_and_take_overrides():
    assert (
        method_config("opro", {"T": 3}).show_failures is False and method_config("opro", {}).use_rop is False
    )
    assert method_config("fermi", {"show_failures": False}).show_failures is True  # identity wins
    assert method_config("fermi-no-rop", {}).use_rop is False
    plus = method_config("fermi+", {})
    assert plus.insert_opinions and plus.name == "small_model" and plus.K == 8
    assert method_config("fermi", {"config": "faithful", "K": 2, "k": 5}).use_soft is False
    with pytest.raises(ValueError, match="unknown option\\(s\\) for fermi: TT"):
        method_config("fermi", {"TT": 2})


def test_zero_shot_and_profile_render_as_documented():
    lm = RecordingLM(SimulatedLM())
    get_method("zero-shot", ctx(answer_lm=lm)).fit(USER).predict(USER.test_questions[:1])
    assert [m.role for m in lm.calls[-1].messages] == ["user"]
    get_method("profile", ctx(answer_lm=lm)).fit(USER).predict(USER.test_questions[:1])
    system = lm.calls[-1].messages[0]
    assert system.role == "system" and system.content.startswith("You are answering a survey as the person")
    assert f"Party: {USER.profile.attributes['Party']}" in system.content


def _opinion_user() -> UserSplit:
    opts = ("Yes", "No")
    topics = ["apples", "bananas", "cherries", "dates", "elderberries", "figs", "grapes"]
    train = tuple(
        LabeledQuestion(Question(f"t{i}", f"Do you like eating {t} every day?", opts), i % 2)
        for i, t in enumerate(topics)
    )
    test = (LabeledQuestion(Question("x", "Do you like eating grapes in winter?", opts), 0),)
    return UserSplit("u", Profile(attributes={"Party": "Democrat"}), train, test, "unit")


def test_few_shot_retrieves_the_k_most_similar_own_opinions():
    u = _opinion_user()
    lm = RecordingLM(SimulatedLM())
    preds = FewShot(lm, HashingEmbedder(), k=3).fit(u).predict(u.test_questions)
    system = lm.calls[-1].messages[0].content
    assert system.startswith(FEW_SHOT_HEADER) and system.count("→") == 3
    assert preds[0].info["demonstrations"][0] == "t6"  # grapes first
    assert "- Do you like eating grapes every day? → Yes" in system
    with_profile = FewShot(lm, HashingEmbedder(), k=2, with_profile=True).fit(u)
    with_profile.predict(u.test_questions)
    assert lm.calls[-1].messages[0].content.startswith("You are answering a survey")
    assert with_profile.name == "profile+few-shot"


def test_few_shot_needs_an_embedder():
    with pytest.raises(ValueError, match="need an embedder"):
        get_method("few-shot", ctx(embedder=None))


def test_group_majority_uses_reference_and_is_labelled_exempt():
    q1 = Question("a", "Q?", ("x", "y", "z"))
    q2 = Question("b", "Q2?", ("x", "y"))
    gm = GroupMajority({"a": (10, 30, 30)}).fit(UserSplit("u", Profile(), (), ()))
    p1, p2 = gm.predict([q1, q2])
    assert p1.pred == 1 and p1.probs == pytest.approx((1 / 7, 3 / 7, 3 / 7)) and p1.info["covered"]
    assert p2.pred is None and p2.probs == (0.5, 0.5) and not p2.info["covered"]
    assert p1.info["exempt_from_privacy_invariant"] and GroupMajority.uses_population_data
    assert "exempt from privacy" in METHODS.help("group-majority")
