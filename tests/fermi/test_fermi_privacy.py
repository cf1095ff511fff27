"""The privacy invariant (spec §1): the canary test.

Two users whose profiles, questions and answers hold unique canary strings run optimization and
prediction for every LLM method, on 2 worker threads sharing one LM-call cache and one recording
LM. No call made for A may contain a B canary (and the reverse), and no optimization-phase call
may contain a test-question canary.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from personalign.data.types import LabeledQuestion, Profile, Question, UserSplit
from personalign.embed.hashing import HashingEmbedder
from personalign.lm.cache import CachedLM
from personalign.lm.recording import RecordingLM
from personalign.lm.simulated import ScriptedOptimizerLM
from personalign.methods import METHODS, MethodContext, get_method

LLM_METHODS = ["zero-shot", "profile", "few-shot", "profile+few-shot", "opro", "opro-rop", "fermi-no-rop"]
LLM_METHODS += ["fermi", "fermi+"]


def canary_user(name: str) -> UserSplit:
    def item(kind: str, i: int, answer: int) -> LabeledQuestion:
        q = Question(
            id=f"{name}-{kind}-{i}",
            text=f"Climate rules CANARY{name}{kind.upper()}Q{i} should be expanded nationwide?",
            options=(f"Agree CANARY{name}{kind.upper()}OPT{i}", "Disagree", "Unsure"),
        )
        return LabeledQuestion(q, answer)

    return UserSplit(
        user_id=f"user-{name}",
        profile=Profile(attributes={"Party": "Democrat", "Hobby": f"CANARY{name}PROFILE"}),
        train=tuple(item("train", i, i % 3) for i in range(6)),
        test=tuple(item("test", i, 0) for i in range(3)),
        dataset="canary",
    )


USERS = {"A": canary_user("A"), "B": canary_user("B")}


def canaries(name: str, kinds=("TRAIN", "TEST", "PROFILE")) -> list[str]:
    out = []
    if "PROFILE" in kinds:
        out.append(f"CANARY{name}PROFILE")
    for kind in ("TRAIN", "TEST"):
        if kind in kinds:
            n = 6 if kind == "TRAIN" else 3
            out += [f"CANARY{name}{kind}Q{i}" for i in range(n)] + [
                f"CANARY{name}{kind}OPT{i}" for i in range(n)
            ]
    return out


def run_user(lm: RecordingLM, name: str, method: str) -> None:
    split = USERS[name]
    ctx = MethodContext(
        answer_lm=lm, optimizer_lm=lm, embedder=HashingEmbedder(), seed=0, options={"T": 3, "K": 2}
    )
    model = get_method(method, ctx)
    with lm.tagged(user=name, method=method, phase="optimize"):
        model.fit(split.for_training())
    with lm.tagged(user=name, method=method, phase="predict"):
        model.predict(split.test_questions)


def test_no_call_for_one_user_contains_another_users_text(tmp_path):
    assert set(LLM_METHODS) <= set(METHODS.names())
    lm = RecordingLM(CachedLM(ScriptedOptimizerLM(), tmp_path / "shared-cache.sqlite"))
    jobs = [(name, method) for method in LLM_METHODS for name in ("A", "B")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for fut in [pool.submit(run_user, lm, name, method) for name, method in jobs]:
            fut.result()

    for me, other in (("A", "B"), ("B", "A")):
        mine = lm.calls_where(user=me)
        assert len(mine) > 100 and {c.kind for c in mine} == {"score", "generate"}
        foreign = canaries(other)
        leaks = [(c.tags, tok) for c in mine for tok in foreign if tok in c.text]
        assert not leaks, f"user {me}'s calls contain user {other}'s text: {leaks[:3]}"
        # the check can fail: the user's own training text and profile do appear in their calls
        own = "\n".join(c.text for c in mine)
        assert f"CANARY{me}PROFILE" in own and f"CANARY{me}TRAINQ0" in own

        optimize_calls = lm.calls_where(user=me, phase="optimize")
        assert any(c.kind == "generate" for c in optimize_calls)
        test_canaries = canaries(me, kinds=("TEST",)) + canaries(other, kinds=("TEST",))
        leaks = [(c.tags, tok) for c in optimize_calls for tok in test_canaries if tok in c.text]
        assert not leaks, f"optimization calls contain test questions: {leaks[:3]}"
        predict_text = "\n".join(c.text for c in lm.calls_where(user=me, phase="predict"))
        assert f"CANARY{me}TESTQ0" in predict_text
