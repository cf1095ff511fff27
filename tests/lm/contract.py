"""The :class:`LanguageModel` contract, as reusable checks every backend's tests call.

Use from any test module under ``tests/``::

    from lm.contract import check_choice_contract, check_generation_contract   # tests/ is on sys.path
    # or, inside tests/lm/:  from .contract import ...

    def test_my_backend_contract(my_lm):
        check_choice_contract(my_lm)
        check_generation_contract(my_lm)

Both take a *raw* backend (not a cache wrapper: the usage checks expect every call to reach it) and
return ``None``, raising ``AssertionError`` on a breach. They make a handful of short calls.
"""

from __future__ import annotations

import math

from personalign.lm.base import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    LanguageModel,
    Message,
)
from personalign.lm.chat import render_choice

_TOL = 1e-3

CHOICE_REQUESTS: tuple[ChoiceRequest, ...] = (
    render_choice(
        "Which statement comes closer to your own views?",
        ["Government should do more to solve problems", "Government is doing too many things"],
        system="You are answering a survey as a 45-year-old nurse from Ohio.",
    ),
    render_choice(
        "How much, if at all, do you worry about climate change?",
        ["A great deal", "Some", "Not too much", "Not at all", "Refused"],
    ),
    render_choice(
        "Do you think of yourself as a morning person?",
        ["Yes", "No", "Not sure"],
        system="You are answering a survey as a 45-year-old nurse from Ohio.",
    ),
    render_choice("Is the sky blue on a clear day?", ["No", "Yes", "Sometimes", "Never"]),
)


def _check_result(res: ChoiceResult, req: ChoiceRequest, where: str) -> None:
    assert isinstance(res, ChoiceResult), f"{where}: expected a ChoiceResult, got {type(res).__name__}"
    assert len(res.logprobs) == req.n_options, (
        f"{where}: {len(res.logprobs)} log-probabilities for {req.n_options} options (wrong order?)"
    )
    assert res.method in ("logprobs", "generate"), f"{where}: unknown method {res.method!r}"
    assert all(not math.isnan(lp) and lp <= 1e-6 for lp in res.logprobs), (
        f"{where}: log-probabilities must be <= 0 and not NaN, got {res.logprobs}"
    )
    assert abs(sum(res.probs) - 1.0) < 1e-6, f"{where}: option probabilities sum to {sum(res.probs)}"
    assert 0.0 <= res.letter_mass <= 1.0 + 1e-9, f"{where}: letter_mass {res.letter_mass} not in [0, 1]"
    if res.method == "logprobs":
        total = sum(math.exp(lp) for lp in res.logprobs)
        assert abs(total - res.letter_mass) < _TOL, (
            f"{where}: letter_mass {res.letter_mass} differs from the total letter probability {total}"
        )
        assert res.pred is not None, f"{where}: a logprobs result must have a prediction"
    if res.pred is not None:
        assert 0 <= res.pred < req.n_options, f"{where}: pred {res.pred} out of range"
        assert res.probs[res.pred] == max(res.probs) or abs(res.probs[res.pred] - max(res.probs)) < 1e-6


def check_choice_contract(lm: LanguageModel) -> None:
    """Scoring: counts and order, valid distributions, batch == one-by-one, usage grows."""
    assert isinstance(lm, LanguageModel), f"{type(lm).__name__} does not implement LanguageModel"
    assert isinstance(lm.backend, str) and lm.backend, "backend must be a non-empty name"
    assert isinstance(lm.model_id, str) and lm.model_id, "model_id must be a non-empty string"
    assert lm.score_choices([]) == [], "an empty batch must give an empty list"

    before = lm.usage.copy()
    batched = lm.score_choices(list(CHOICE_REQUESTS))
    after = lm.usage.copy()
    assert len(batched) == len(CHOICE_REQUESTS), f"{len(batched)} results for {len(CHOICE_REQUESTS)} requests"
    for i, (res, req) in enumerate(zip(batched, CHOICE_REQUESTS, strict=True)):
        _check_result(res, req, f"request {i}")
    assert after.calls - before.calls == len(CHOICE_REQUESTS), (
        f"usage.calls grew by {after.calls - before.calls}, expected {len(CHOICE_REQUESTS)}"
    )
    assert after.prompt_tokens > before.prompt_tokens, "usage.prompt_tokens did not grow"
    assert after.seconds >= before.seconds, "usage.seconds went down"

    # results are in request order: each request alone gives what it got in the batch
    for i, req in enumerate(reversed(CHOICE_REQUESTS)):
        (alone,) = lm.score_choices([req])
        j = len(CHOICE_REQUESTS) - 1 - i
        assert alone.method == batched[j].method
        for a, b in zip(alone.logprobs, batched[j].logprobs, strict=True):
            if math.isinf(a) or math.isinf(b):
                assert a == b, f"request {j}: batched {b} vs alone {a}"
            else:
                assert abs(a - b) < _TOL, f"request {j}: batched log-prob {b} vs alone {a} (tolerance {_TOL})"

    assert lm.count_tokens("Hello there, how are you?") > 0, "count_tokens must count something"
    assert lm.count_tokens("one two three four five six seven eight") > lm.count_tokens("one")


def _greq(text: str, **kw: object) -> GenerationRequest:
    return GenerationRequest(messages=(Message("user", text),), **kw)  # type: ignore[arg-type]


def check_generation_contract(lm: LanguageModel) -> None:
    """Generation: counts and order, max_tokens, seeded reproducibility (alone or in a batch), stops."""
    assert lm.generate([]) == [], "an empty batch must give an empty list"
    story = _greq("Write one sentence about a cat.", max_tokens=16, temperature=0.9, top_p=0.95, seed=7)
    other = _greq("Name three colours.", max_tokens=8, temperature=0.7, seed=3)
    greedy = _greq("Say hello.", max_tokens=6, temperature=0.0, seed=0)

    before = lm.usage.copy()
    batch = lm.generate([story, other, greedy])
    after = lm.usage.copy()
    assert len(batch) == 3, f"{len(batch)} results for 3 requests"
    for res, req in zip(batch, (story, other, greedy), strict=True):
        assert isinstance(res, GenerationResult) and isinstance(res.text, str)
        assert 0 <= res.completion_tokens <= req.max_tokens, (
            f"{res.completion_tokens} tokens generated for max_tokens={req.max_tokens}"
        )
        assert res.finish_reason in ("stop", "length")
    assert any(r.text.strip() for r in batch), "no request produced any text"
    assert after.calls - before.calls == 3, f"usage.calls grew by {after.calls - before.calls}, expected 3"
    assert after.generated_tokens > before.generated_tokens, "usage.generated_tokens did not grow"
    assert after.prompt_tokens > before.prompt_tokens, "usage.prompt_tokens did not grow"

    # the same request with the same seed gives the same text, alone or with other requests
    (alone,) = lm.generate([story])
    assert alone.text == batch[0].text, (
        f"seeded text changed with the batch: {alone.text!r} vs {batch[0].text!r}"
    )
    (greedy_alone,) = lm.generate([greedy])
    assert greedy_alone.text == batch[2].text, "greedy text changed between calls"
    again = lm.generate([other, story])
    assert again[1].text == batch[0].text and again[0].text == batch[1].text, "results not in request order"

    # stop strings: the text is cut before the first stop string and never contains it
    base = batch[0].text
    stop = next((c for c in base[len(base) // 3 :] if c.isalpha()), None)
    if stop is not None:
        (cut,) = lm.generate(
            [
                _greq(
                    story.messages[0].content,
                    max_tokens=16,
                    temperature=0.9,
                    top_p=0.95,
                    seed=7,
                    stop=(stop,),
                )
            ]
        )
        assert stop not in cut.text, f"stop string {stop!r} found in {cut.text!r}"
        assert cut.text == base[: base.index(stop)], (
            f"text with stop {stop!r} should be {base[: base.index(stop)]!r}, got {cut.text!r}"
        )
        assert cut.finish_reason == "stop"
    (never,) = lm.generate(
        [_greq("Count from one to twenty.", max_tokens=12, temperature=0.0, stop=("\x00\x01",))]
    )
    assert "\x00\x01" not in never.text
