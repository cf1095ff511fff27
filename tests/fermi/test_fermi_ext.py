"""Ext ``insert_opinions`` (fermi+): stated opinions help when the optimizer writes nothing useful,
and leave-one-out scoring keeps their training score honest."""

from __future__ import annotations

from statistics import mean

from personalign.embed.hashing import HashingEmbedder
from personalign.fermi import FermiConfig, FermiPersonalizer
from personalign.fermi.extensions import insert_opinions_candidates
from personalign.fermi.memory import MisalignedRecord
from personalign.lm.simulated import ScriptedOptimizerLM, SimulatedLM, simulated_users

from .helpers import scored

USERS = simulated_users(12, seed=0)


def run(cfg: FermiConfig) -> tuple[list[float], list[float], list[str]]:
    test, train, origins = [], [], []
    for u in USERS:
        useless = ScriptedOptimizerLM(junk_rate=1.0)  # every candidate it writes is rejected
        p = FermiPersonalizer(SimulatedLM(), useless, HashingEmbedder(), cfg).fit(u.for_training())
        preds = p.predict(u.test_questions)
        test.append(mean(x.pred == it.answer for x, it in zip(preds, u.test, strict=True)))
        train.append(p.pool_[0].acc)
        origins += [x.info["prompt_origin"] for x in preds]
    return test, train, origins


def test_insert_opinions_helps_without_a_useful_optimizer_and_scores_honestly():
    base_test, _, _ = run(FermiConfig(T=4))
    ext_test, ext_train, origins = run(FermiConfig(T=4, insert_opinions=True))
    assert mean(ext_test) - mean(base_test) >= 0.10, (mean(ext_test), mean(base_test))
    assert any(o.startswith("ext:") for o in origins)
    # leave-one-out: the training score of the chosen prompts does not overstate the test score
    assert mean(ext_train) - mean(ext_test) <= 0.08, (mean(ext_train), mean(ext_test))


def test_insert_opinions_candidates_are_structured_and_deduplicated():
    best = scored("You are a Democrat.", 0.5, misaligned=(MisalignedRecord(2, "q", "a", "b"),))
    cfg = FermiConfig(insert_opinions=True, insert_k=4)
    specs = insert_opinions_candidates(best, 5, cfg, set(), can_retrieve=True)
    assert [(s.origin, s.opinions, s.retrieval_k) for s in specs] == [
        ("ext:misaligned", (2,), 0),
        ("ext:all", (0, 1, 2, 3, 4), 0),
        ("ext:retrieval", (), 4),
    ]
    assert all(s.text == "You are a Democrat." for s in specs)
    again = insert_opinions_candidates(best, 5, cfg, {s.key for s in specs}, can_retrieve=False)
    assert again == []
