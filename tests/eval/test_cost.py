"""Cost metering: scoring and generation are counted apart, per phase, even on one model."""

from __future__ import annotations

from personalign.eval.cost import MeteredLM, PhaseCost, measure, total
from personalign.lm.base import GenerationRequest, Message
from personalign.lm.chat import render_choice
from personalign.lm.simulated import SimulatedLM


def test_metered_lm_splits_scoring_and_generation() -> None:
    lm = MeteredLM(SimulatedLM())
    reqs = [
        render_choice(f"Question {i}?", ["Agree", "Disagree"], system="You are liberal.") for i in (1, 2, 3)
    ]
    fit, pred = PhaseCost(), PhaseCost()
    with measure([lm, lm], fit):  # the same model in both roles is counted once
        lm.score_choices(reqs)
        lm.generate([GenerationRequest((Message("user", "Write a prompt."),), max_tokens=8, seed=1)])
    with measure([lm], pred):
        lm.score_choices(reqs[:1])
    assert fit.answer.calls == 3 and fit.optimizer.calls == 1
    assert fit.optimizer.generated_tokens > 0
    assert pred.answer.calls == 1 and pred.optimizer.calls == 0
    assert lm.usage.calls == 5  # the wrapped model's own counter sees everything
    t = total({"fit": fit, "predict": pred})
    assert (t["answer_calls"], t["optimizer_calls"], t["calls"]) == (4, 1, 5)
    assert t["wall_seconds"] >= 0
    assert lm.model_id == lm.inner.model_id and lm.backend == "simulated"
    assert lm.count_tokens("two words") == 2
