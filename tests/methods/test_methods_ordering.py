"""On simulated users, the methods rank as the issue requires, by asserted margins:
fermi > opro > profile > zero-shot; and removing the mis-aligned contexts from Fermi's meta-prompt
removes its edge over OPRO.

The simulated respondent (:class:`~personalign.lm.simulated.SimulatedLM`) follows stance words and
stated answers in its system prompt; the scripted optimizer can only write topic-specific answers
when the meta-prompt shows it the mis-aligned responses. Measured with 12 users, T=6 (seed 0):
zero-shot 0.247, profile 0.326, opro 0.562, fermi 0.809, fermi without mis-aligned contexts 0.562.
"""

from __future__ import annotations

from statistics import mean

import pytest

from personalign.data.types import UserSplit
from personalign.embed.hashing import HashingEmbedder
from personalign.fermi import FermiConfig, FermiPersonalizer
from personalign.lm.simulated import ScriptedOptimizerLM, SimulatedLM, simulated_users
from personalign.methods import MethodContext, get_method

USERS = simulated_users(12, seed=0)
OPTIONS = {"T": 6}


def accuracy(make, users: list[UserSplit]) -> list[float]:
    out = []
    for u in users:
        model = make().fit(u.for_training())
        preds = model.predict(u.test_questions)
        out.append(mean(p.pred == it.answer for p, it in zip(preds, u.test, strict=True)))
    return out


@pytest.fixture(scope="module")
def results() -> dict[str, list[float]]:
    ctx = MethodContext(
        answer_lm=SimulatedLM(),
        optimizer_lm=ScriptedOptimizerLM(),
        embedder=HashingEmbedder(),
        options=OPTIONS,
    )
    res = {
        m: accuracy(lambda m=m: get_method(m, ctx), USERS) for m in ("zero-shot", "profile", "opro", "fermi")
    }
    no_contexts = FermiConfig(T=6, show_failures=False)  # the fermi config minus mis-aligned contexts
    res["fermi-without-contexts"] = accuracy(
        lambda: FermiPersonalizer(SimulatedLM(), ScriptedOptimizerLM(), HashingEmbedder(), no_contexts), USERS
    )
    return res


def test_fermi_beats_opro_beats_profile_beats_zero_shot(results):
    acc = {m: mean(v) for m, v in results.items()}
    assert acc["fermi"] - acc["opro"] >= 0.15, acc
    assert acc["opro"] - acc["profile"] >= 0.10, acc
    assert acc["profile"] - acc["zero-shot"] >= 0.05, acc
    # per user, Fermi is never worse than OPRO by more than one question in most users
    wins = sum(f >= o for f, o in zip(results["fermi"], results["opro"], strict=True))
    assert wins >= 10, (results["fermi"], results["opro"])


def test_removing_misaligned_contexts_removes_fermis_edge(results):
    acc = {m: mean(v) for m, v in results.items()}
    assert abs(acc["fermi-without-contexts"] - acc["opro"]) <= 0.02, acc
    assert acc["fermi"] - acc["fermi-without-contexts"] >= 0.15, acc
