"""RecordingLM: every call recorded with its messages and the tags in force."""

from __future__ import annotations

import multiprocessing as mp
import threading
from pathlib import Path

from personalign.lm.base import GenerationRequest, LanguageModel, Message
from personalign.lm.chat import render_choice
from personalign.lm.recording import RecordingLM
from personalign.lm.simulated import SimulatedLM

from .contract import check_choice_contract, check_generation_contract


def test_records_every_call_with_tags_and_delegates() -> None:
    inner = SimulatedLM()
    lm = RecordingLM(inner)
    assert isinstance(lm, LanguageModel) and lm.model_id == inner.model_id
    q_a = render_choice("Canary-A question?", ["x", "y"], "persona CANARY-A")
    q_b = render_choice("Canary-B question?", ["x", "y"], "persona CANARY-B")
    with lm.tagged(user="A", phase="optimize"):
        out = lm.score_choices([q_a, q_a])
        with lm.tagged(phase="predict"):
            lm.generate([GenerationRequest((Message("user", "hi A"),), prefill="PREFILL-A")])
    with lm.tagged(user="B"):
        lm.score_choices([q_b])
    lm.score_choices([q_b])
    assert out == inner.score_choices([q_a, q_a])
    assert [c.kind for c in lm.calls] == ["score", "score", "generate", "score", "score"]
    assert [c.tags for c in lm.calls] == [
        {"user": "A", "phase": "optimize"},
        {"user": "A", "phase": "optimize"},
        {"user": "A", "phase": "predict"},
        {"user": "B"},
        {},
    ]
    a_calls = lm.calls_where(user="A")
    assert len(a_calls) == 3 and all("CANARY-B" not in c.text for c in a_calls)
    assert "PREFILL-A" in a_calls[2].text  # the prefill is part of what the model saw
    assert lm.calls_where(user="A", phase="optimize") == a_calls[:2]
    assert "CANARY-B" in lm.calls_where(user="B")[0].text
    lm.clear()
    assert lm.calls == []


def test_tags_are_per_thread() -> None:
    lm = RecordingLM(SimulatedLM())
    barrier = threading.Barrier(2)

    def work(user: str) -> None:
        with lm.tagged(user=user):
            barrier.wait()
            for i in range(20):
                lm.score_choices([render_choice(f"{user} question {i}?", ["a", "b"])])

    threads = [threading.Thread(target=work, args=(u,)) for u in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lm.calls) == 40
    for user, other in (("A", "B"), ("B", "A")):
        calls = lm.calls_where(user=user)
        assert len(calls) == 20 and all(f"{other} question" not in c.text for c in calls)


def _child(path: str, user: str) -> None:
    lm = RecordingLM(SimulatedLM(), log_path=path)
    with lm.tagged(user=user, phase="optimize"):
        for i in range(30):
            lm.score_choices([render_choice(f"{user} q{i}?", ["a", "b"], f"persona {user}")])


def test_log_file_collects_calls_from_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_child, args=(str(path), u)) for u in ("A", "B")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    calls = RecordingLM.read_log(path)
    assert len(calls) == 60
    for user, other in (("A", "B"), ("B", "A")):
        mine = [c for c in calls if c.tags == {"user": user, "phase": "optimize"}]
        assert len(mine) == 30 and all(f"persona {other}" not in c.text for c in mine)
        assert mine[0].messages[0] == Message("system", f"persona {user}")


def test_recording_lm_meets_the_language_model_contract() -> None:
    lm = RecordingLM(SimulatedLM())
    check_choice_contract(lm)
    check_generation_contract(lm)
    assert {c.kind for c in lm.calls} == {"score", "generate"}
