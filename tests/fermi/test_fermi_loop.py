"""The optimization loop: resume after a kill, finished users, config mismatch, logs, early stop,
retries and rejection counts, small-model mode; the personalizer's JSON round trip and predict."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from personalign.embed.hashing import HashingEmbedder
from personalign.fermi import FermiConfig, FermiPersonalizer, StateMismatchError, UserTask, optimize
from personalign.lm.base import GenerationRequest, GenerationResult, LanguageModel
from personalign.lm.simulated import ScriptedOptimizerLM, SimulatedLM, simulated_users
from personalign.lm.usage import Usage

USERS = simulated_users(3, seed=7)
CFG = FermiConfig(T=5, early_stop=False)


class Killed(RuntimeError):
    pass


class KillAfter:
    """Delegates to ``inner`` and raises after ``n`` requests (simulates a crash mid-run)."""

    def __init__(self, inner: LanguageModel, n: int) -> None:
        self.inner, self.left = inner, n
        self.backend, self.usage = inner.backend, Usage()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def _spend(self, k: int) -> None:
        self.left -= k
        if self.left < 0:
            raise Killed("killed")

    def score_choices(self, requests):
        self._spend(len(requests))
        return self.inner.score_choices(requests)

    def generate(self, requests):
        self._spend(len(requests))
        return self.inner.generate(requests)


def pool_texts(state) -> list[tuple[str, float, int]]:
    return [(sp.text, sp.acc, sp.birth) for sp in state.memory_prompts()]


def test_resume_after_kill_equals_uninterrupted_run(tmp_path):
    task = UserTask.from_split(USERS[0])
    ref = optimize(task, SimulatedLM(), ScriptedOptimizerLM(), CFG, seed=3)
    assert ref.round == 5 and ref.finished

    answer = SimulatedLM()
    killer = KillAfter(answer, 15 * 8)  # dies during round 2 or 3
    with pytest.raises(Killed):
        optimize(task, killer, ScriptedOptimizerLM(), CFG, seed=3, workdir=tmp_path)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert 1 <= saved["round"] < 5 and not saved["finished"]
    done_before = saved["round"]

    resumed_lm = SimulatedLM()
    resumed = optimize(task, resumed_lm, ScriptedOptimizerLM(), CFG, seed=3, workdir=tmp_path)
    assert pool_texts(resumed) == pool_texts(ref)
    assert [sp.to_dict() for sp in resumed.archive] == [sp.to_dict() for sp in ref.archive]
    # the finished rounds were not redone
    first_round_prompts = sum(1 for sp in ref.archive if sp.round <= done_before)
    assert resumed_lm.usage.calls == 15 * (len(ref.archive) - first_round_prompts)
    rounds = [json.loads(x)["round"] for x in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert rounds == [1, 2, 3, 4, 5]

    # a finished user is never redone: no LM call at all
    idle = SimulatedLM()
    again = optimize(task, idle, KillAfter(ScriptedOptimizerLM(), 0), CFG, seed=3, workdir=tmp_path)
    assert idle.usage.calls == 0 and pool_texts(again) == pool_texts(ref)


def test_config_hash_mismatch_is_refused_unless_forced(tmp_path):
    task = UserTask.from_split(USERS[1])
    optimize(task, SimulatedLM(), ScriptedOptimizerLM(), FermiConfig(T=2), workdir=tmp_path)
    with pytest.raises(StateMismatchError, match="config hash"):
        optimize(task, SimulatedLM(), ScriptedOptimizerLM(), FermiConfig(T=3), workdir=tmp_path)
    state = optimize(
        task, SimulatedLM(), ScriptedOptimizerLM(), FermiConfig(T=3), workdir=tmp_path, force=True
    )
    assert state.round == 3 and state.config_hash == FermiConfig(T=3).config_hash()


def test_round_log_holds_meta_prompt_outputs_outcomes_and_scores(tmp_path):
    task = UserTask.from_split(USERS[0])
    optimize(task, SimulatedLM(), ScriptedOptimizerLM(junk_rate=0.3), FermiConfig(T=3), workdir=tmp_path)
    recs = [json.loads(x) for x in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert recs[0]["meta_prompt"] is None and len(recs[0]["candidates"]) == 2  # the two seeds
    r2 = recs[1]
    assert r2["meta_prompt"].startswith("Task: ") and "Answers it got wrong:" in r2["meta_prompt"]
    assert r2["raw_outputs"] and all("text" in o for o in r2["raw_outputs"])
    assert {o["reason"] for o in r2["parse"]} >= {None}
    for c in r2["candidates"]:
        assert (
            len(c["correct"]) == 15 and 0 <= c["acc"] <= 1 and len(c["misaligned"]) == 15 - sum(c["correct"])
        )
    assert len(r2["memory"]) <= 5


def test_rejections_are_counted_and_retries_bounded():
    task = UserTask.from_split(USERS[2])
    state = optimize(
        task, SimulatedLM(), ScriptedOptimizerLM(junk_rate=1.0), FermiConfig(T=3, K=4, retries=2)
    )
    c = state.counters
    # every output is junk: each round, one call + R * K extra calls, nothing accepted
    assert c["optimizer_calls"] == 2 * (1 + 2 * 4)
    assert c["candidates_accepted"] == 0 and c["empty_rounds"] == 2
    assert set(c["rejected"]) <= {"empty", "too_short", "template_debris", "duplicate", "unparseable"}
    assert sum(c["rejected"].values()) == c["candidates_parsed"] + c["rejected"].get("unparseable", 0)
    assert [sp.origin for sp in state.memory_prompts()] == ["seed:profile", "seed:neutral"] or len(
        state.archive
    ) == 2


class PrefillRecorder(ScriptedOptimizerLM):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        self.seen.extend(requests)
        return super().generate(requests)


def test_small_model_mode_makes_k_prefilled_calls_with_distinct_seeds():
    opt = PrefillRecorder()
    cfg = FermiConfig.named("small_model", T=2, insert_opinions=False)
    state = optimize(UserTask.from_split(USERS[0]), SimulatedLM(), opt, cfg, seed=1)
    first = [r for r in opt.seen][:8]
    assert len(first) == 8 and all(r.prefill == "<prompt>You are" for r in first)
    assert len({r.seed for r in first}) == 8 and all("</prompt>" in r.stop for r in first)
    assert all("Write 1 new prompt," in r.messages[0].content for r in first)
    accepted = [sp for sp in state.archive if sp.origin == "optimizer"]
    assert accepted and all(sp.text.startswith("You are") for sp in accepted)


def test_early_stop_on_patience():
    # an optimizer that never produces anything valid cannot improve: stop after `patience` rounds
    task = UserTask.from_split(USERS[0])
    state = optimize(task, SimulatedLM(), ScriptedOptimizerLM(junk_rate=1.0), FermiConfig(T=10, patience=2))
    assert state.finished and state.stop_reason == "patience" and state.round == 3


def test_optimization_raises_training_accuracy_over_the_seeds():
    task = UserTask.from_split(USERS[0])
    state = optimize(task, SimulatedLM(), ScriptedOptimizerLM(), FermiConfig(T=6))
    seeds = [sp for sp in state.archive if sp.origin.startswith("seed")]
    assert state.memory_prompts()[0].acc >= max(s.acc for s in seeds) + 0.2


# -- personalizer -----------------------------------------------------------------------------


def fitted(cfg: FermiConfig | None = None, user=USERS[0]) -> FermiPersonalizer:
    cfg = cfg or FermiConfig(T=4)
    return FermiPersonalizer(SimulatedLM(), ScriptedOptimizerLM(), HashingEmbedder(), cfg, seed=2).fit(
        user.for_training()
    )


def test_predict_reports_rop_choice_and_costs_one_request_per_question():
    p = fitted()
    lm = p.answer_lm
    before = lm.usage.calls
    qs = USERS[0].test_questions
    preds = p.predict(qs)
    assert lm.usage.calls - before == len(qs)
    for q, pr in zip(qs, preds, strict=True):
        assert pr.question_id == q.id and pr.pred is not None and abs(sum(pr.probs) - 1) < 1e-9
        info = pr.info
        assert len(info["neighbour_ids"]) == 3 and len(info["neighbour_similarities"]) == 3
        assert info["neighbour_similarities"] == sorted(info["neighbour_similarities"], reverse=True)
        assert len(info["neighbour_acc"]) == len(p.pool_)
        assert info["prompt"] == p.pool_[info["prompt_index"]].text
        chosen_nacc = info["neighbour_acc"][info["prompt_index"]]
        assert chosen_nacc == max(info["neighbour_acc"])
        assert info["tie_break"] in (None, "acc", "soft", "birth", "index")


def test_no_rop_uses_the_single_best_prompt():
    p = fitted(FermiConfig(T=3, use_rop=False))
    preds = p.predict(USERS[0].test_questions)
    assert {pr.info["prompt"] for pr in preds} == {p.pool_[0].text}


def test_json_round_trip_answers_identically(tmp_path):
    p = fitted(FermiConfig.named("small_model", T=3))
    path = p.save(tmp_path / "u.json")
    data = json.loads(path.read_text())
    assert (
        data["config_hash"] == p.config.config_hash() and data["models"]["answer_lm"] == p.answer_lm.model_id
    )
    assert len(data["C"]) == len(data["pool"]) == len(data["S"]) and len(data["C"][0]) == 15
    answer = SimulatedLM()
    q = FermiPersonalizer.load(path, answer, HashingEmbedder())
    assert q.config == p.config and [sp.to_dict() for sp in q.pool_] == [sp.to_dict() for sp in p.pool_]
    assert q.C_ == p.C_ and q.S_ == p.S_
    a, b = p.predict(USERS[0].test_questions), q.predict(USERS[0].test_questions)
    assert [(x.pred, x.probs, x.info["prompt"]) for x in a] == [
        (x.pred, x.probs, x.info["prompt"]) for x in b
    ]
    assert answer.usage.calls == len(USERS[0].test)  # loading never re-optimizes


def test_load_rejects_bad_files_clearly(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match=r"bad\.json: field 'format'"):
        FermiPersonalizer.load(bad, SimulatedLM())
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json:1: invalid JSON"):
        FermiPersonalizer.load(broken, SimulatedLM())


def test_fit_needs_an_embedder_for_rop_and_predict_needs_fit():
    with pytest.raises(ValueError, match="needs an embedder"):
        FermiPersonalizer(SimulatedLM(), config=FermiConfig(T=1)).fit(USERS[0])
    with pytest.raises(RuntimeError, match="not fitted"):
        FermiPersonalizer(SimulatedLM()).predict(USERS[0].test_questions)


def test_workdir_layout_is_per_user(tmp_path):
    p = FermiPersonalizer(
        SimulatedLM(), ScriptedOptimizerLM(), HashingEmbedder(), FermiConfig(T=2), workdir=tmp_path
    )
    p.fit(USERS[1])
    assert (tmp_path / USERS[1].user_id / "state.json").exists()
    assert (tmp_path / USERS[1].user_id / "rounds.jsonl").exists()


def test_low_letter_mass_warns():
    task = UserTask.from_split(USERS[0])
    with pytest.warns(UserWarning, match="mean letter mass 0.30 < 0.5"):
        optimize(task, SimulatedLM(letter_mass=0.3), ScriptedOptimizerLM(), FermiConfig(T=1))


def test_results_do_not_depend_on_workers_or_user_order():
    from concurrent.futures import ThreadPoolExecutor

    def run(u):
        return pool_texts(optimize(UserTask.from_split(u), SimulatedLM(), ScriptedOptimizerLM(), CFG, seed=5))

    serial = {u.user_id: run(u) for u in USERS}
    with ThreadPoolExecutor(max_workers=2) as ex:
        parallel = dict(zip([u.user_id for u in reversed(USERS)], ex.map(run, reversed(USERS)), strict=True))
    assert parallel == serial
    assert len({tuple(v) for v in serial.values()}) == 3  # users' seeds differ
