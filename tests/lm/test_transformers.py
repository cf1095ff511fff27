"""The transformers backend on the real bundled ``smollm2-135m`` (offline; fails if it is missing)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from personalign.lm.base import ChoiceRequest, GenerationRequest, LanguageModel, Message
from personalign.lm.chat import render_choice
from personalign.lm.transformers import (
    CONVERTED_MARKER,
    TransformersLM,
    _merge_system,
    _sample,
    cpu_supports_bf16,
    resolve_dtype,
)

from .contract import check_choice_contract, check_generation_contract

pytestmark = pytest.mark.model


@pytest.fixture(scope="session")
def smollm() -> TransformersLM:
    """The bundled 135M model, loaded once (converted to safetensors in the cache on first use)."""
    return TransformersLM("smollm2-135m", batch_size=4)


@pytest.fixture(scope="session")
def opinionqa_requests(data_dir: Path) -> list[ChoiceRequest]:
    """Six real OpinionQA questions, with and without a persona."""
    path = data_dir / "opinionqa" / "hwang2023_users" / "questions.json"
    questions = json.loads(path.read_text())
    items = [questions[k] for k in sorted(questions)[:6]]
    persona = "You are a 67-year-old retired farmer from rural Kansas who attends church weekly."
    return [
        render_choice(q["question"], q["options"], system=persona if i % 2 else None)
        for i, q in enumerate(items)
    ]


def test_contract(smollm: TransformersLM) -> None:
    assert isinstance(smollm, LanguageModel)
    check_choice_contract(smollm)
    check_generation_contract(smollm)


def test_letter_mass_on_real_opinionqa_question(smollm: TransformersLM, data_dir: Path) -> None:
    """At least 80% of the probability on the option letters (135M model, shared chat format, no persona)."""
    questions = json.loads((data_dir / "opinionqa" / "hwang2023_users" / "questions.json").read_text())
    reqs = [render_choice(q["question"], q["options"]) for q in (questions[k] for k in sorted(questions)[:6])]
    results = smollm.score_choices(reqs)
    masses = [round(r.letter_mass, 3) for r in results]
    assert sum(masses) / len(masses) >= 0.8, f"letter mass {masses}: mean below 0.8"
    assert sum(m >= 0.8 for m in masses) >= 4, f"letter mass {masses}: fewer than 4 of 6 reach 0.8"
    for req, res in zip(reqs, results, strict=True):
        assert len(res.logprobs) == req.n_options
        assert res.prompt_tokens == len(smollm.encode_prompt(req.messages))


def test_batched_equals_one_by_one(smollm: TransformersLM, opinionqa_requests) -> None:
    lengths = {len(smollm.encode_prompt(r.messages)) for r in opinionqa_requests}
    assert len(lengths) > 1, "the batch must mix prompt lengths so that padding is exercised"
    batched = smollm.score_choices(opinionqa_requests)
    for req, res in zip(opinionqa_requests, batched, strict=True):
        (alone,) = smollm.score_choices([req])
        assert max(abs(a - b) for a, b in zip(alone.logprobs, res.logprobs, strict=True)) < 1e-3
        assert abs(alone.letter_mass - res.letter_mass) < 1e-3


def test_letter_logprob_is_logsumexp_of_letter_spellings(smollm: TransformersLM, opinionqa_requests) -> None:
    req = opinionqa_requests[1]
    (res,) = smollm.score_choices([req])
    row = smollm.last_logprobs([smollm.encode_prompt(req.messages)])[0]
    ids_a = smollm.letter_token_ids("A")
    assert len(ids_a) == 2, "SmolLM2 has both 'A' and ' A' as single tokens"
    assert res.logprobs[0] == pytest.approx(float(torch.logsumexp(row[list(ids_a)], 0)), abs=1e-5)
    all_ids = [t for letter in req.letters for t in smollm.letter_token_ids(letter)]
    assert res.letter_mass == pytest.approx(float(row[all_ids].exp().sum()), abs=1e-5)


def test_persona_goes_into_the_system_turn(smollm: TransformersLM) -> None:
    text = smollm.render((Message("system", "PERSONA-XYZ"), Message("user", "Q?")))
    assert text.index("PERSONA-XYZ") < text.index("Q?")
    assert text.endswith("<|im_start|>assistant\n")
    assert "You are a helpful AI assistant named SmolLM" not in text


def test_generation_text_seed_and_prefill(smollm: TransformersLM) -> None:
    msgs = (Message("user", "Write a short greeting."),)
    a = GenerationRequest(msgs, max_tokens=12, temperature=1.0, seed=11)
    b = GenerationRequest(msgs, max_tokens=12, temperature=1.0, seed=12)
    first = smollm.generate([a, b, a])
    assert first[0].text.strip(), "generation returned no text"
    assert first[0].text == first[2].text
    assert smollm.generate([a])[0].text == first[0].text
    samples = {r.text for r in smollm.generate([GenerationRequest(msgs, 12, 1.0, seed=s) for s in range(4)])}
    assert len(samples) > 1, "different seeds should give different samples at temperature 1"
    prefill = "Hello! My name is"
    (pre,) = smollm.generate([GenerationRequest(msgs, max_tokens=6, temperature=0.0, prefill=prefill)])
    prompt_with_prefill = smollm.encode_prompt(msgs, prefill)
    assert pre.prompt_tokens == len(prompt_with_prefill)
    assert not pre.text.startswith(prefill)
    (long_one,) = smollm.generate([GenerationRequest(msgs, max_tokens=3, temperature=0.0)])
    assert long_one.completion_tokens <= 3


def test_batched_decoding_mode(smollm: TransformersLM) -> None:
    """batch_invariant=False decodes rows together; same-length prompts (no padding) match exactly."""
    msgs = (Message("user", "Name a fruit."),)
    same = [GenerationRequest(msgs, max_tokens=8, temperature=1.0, seed=s) for s in range(3)]
    mixed = [*same[:1], GenerationRequest((Message("user", "Write a long sentence about rivers."),), 8, 0.0)]
    alone = smollm.generate(same)
    smollm.batch_invariant = False
    try:
        together = smollm.generate(same)
        mixed_out = smollm.generate(mixed)
    finally:
        smollm.batch_invariant = True
    assert [r.text for r in together] == [r.text for r in alone]
    assert len(mixed_out) == 2 and all(
        isinstance(r.text, str) and r.completion_tokens <= 8 for r in mixed_out
    )
    assert mixed_out[1].prompt_tokens > mixed_out[0].prompt_tokens, "results must stay in request order"


def test_usage_and_count_tokens(smollm: TransformersLM) -> None:
    before = smollm.usage.copy()
    smollm.score_choices([render_choice("Yes or no?", ["Yes", "No"])])
    delta = smollm.usage - before
    assert delta.calls == 1 and delta.prompt_tokens > 10 and delta.seconds > 0
    assert smollm.count_tokens("hello world") == len(smollm.tokenizer("hello world")["input_ids"])
    assert smollm.model_id.startswith("smollm2-135m@b179c9523d0e")


def test_gguf_conversion_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smollm) -> None:
    monkeypatch.setenv("PERSONALIGN_CACHE", str(tmp_path))
    first = TransformersLM("smollm2-135m", dtype="float32")
    folder = first.loaded_from_
    assert first.converted_ and folder.parent == tmp_path / "models"
    assert (folder / "model.safetensors").is_file() and (folder / CONVERTED_MARKER).is_file()
    assert not list(folder.parent.glob(".*")), "the temporary conversion folder was left behind"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    second = TransformersLM("smollm2-135m", dtype="float32")
    assert not second.converted_ and second.loaded_from_ == folder
    assert second.model_id == first.model_id == smollm.model_id
    req = [render_choice("Is water wet?", ["Yes", "No"])]
    a, b = first.score_choices(req)[0], second.score_choices(req)[0]
    assert a.logprobs == b.logprobs


def test_dtype_resolution() -> None:
    cpu = torch.device("cpu")
    expected = torch.bfloat16 if cpu_supports_bf16() else torch.float32
    assert resolve_dtype("auto", cpu) == expected
    assert resolve_dtype("fp32", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("float7", cpu)


def test_merge_system_for_templates_without_system_role() -> None:
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    assert _merge_system(chat) == [{"role": "user", "content": "S\n\nU"}]


def test_sampling_rules() -> None:
    logits = torch.tensor([0.0, 3.0, 2.9, -5.0])
    assert _sample(logits, 0.0, 1.0, torch.Generator().manual_seed(0)) == 1
    draws = {_sample(logits, 1.0, 0.5, torch.Generator().manual_seed(s)) for s in range(30)}
    assert draws == {1}, "top_p=0.5 keeps only the most likely token here (p≈0.51)"
    draws = {_sample(logits, 1.0, 1.0, torch.Generator().manual_seed(s)) for s in range(60)}
    assert {1, 2} <= draws
    p = torch.softmax(logits, -1)
    assert float(p[1]) > 0.5 and not math.isnan(float(p.sum()))


def test_shared_prompt_prefill_equals_one_by_one(
    smollm: TransformersLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Samples sharing a prompt (Fermi's K candidates) are prefilled once and decoded from copies of
    the KV cache: every step's logits and every text equal decoding each request alone."""
    import personalign.lm.transformers as backend

    seen: list[torch.Tensor] = []
    sample = backend._sample

    def recording(logits, temperature, top_p, gen):  # type: ignore[no-untyped-def]
        seen.append(logits.clone())
        return sample(logits, temperature, top_p, gen)

    monkeypatch.setattr(backend, "_sample", recording)
    msgs = (Message("user", "Write a one-sentence instruction for a helpful assistant."),)
    reqs = [
        GenerationRequest(msgs, max_tokens=10, temperature=1.0, top_p=0.95, seed=s, prefill="<prompt>")
        for s in range(3)
    ]
    prefills = 0
    prefill = smollm._prefill

    def counting(prompts):  # type: ignore[no-untyped-def]
        nonlocal prefills
        prefills += 1
        return prefill(prompts)

    monkeypatch.setattr(smollm, "_prefill", counting)
    shared = smollm.generate(reqs)
    shared_logits, seen[:] = list(seen), []
    assert prefills == 1, "requests with one prompt must share one prompt pass"
    alone = [smollm.generate([r])[0] for r in reqs]
    assert prefills == 1 + len(reqs)
    assert [r.text for r in shared] == [r.text for r in alone]
    assert [r.completion_tokens for r in shared] == [r.completion_tokens for r in alone]
    assert len({r.text for r in shared}) > 1, "different seeds should give different samples"
    assert len(shared_logits) == len(seen) > len(reqs)
    assert all(torch.equal(a, b) for a, b in zip(shared_logits, seen, strict=True))
