"""The OpenAI-compatible server over the simulated model, in-process (fast checks of the protocol).

The real-model, real-socket tests are in ``test_openai.py``.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from personalign.lm.base import GenerationRequest, Message
from personalign.lm.chat import format_question, render_choice
from personalign.lm.server import create_app, mc_options_count
from personalign.lm.simulated import SimulatedLM

LM = SimulatedLM()


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(LM, served_name="sim"))


def _chat(client: TestClient, **body: object):  # type: ignore[no-untyped-def]
    return client.post("/v1/chat/completions", json={"model": "sim", **body})


def test_models_and_health(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [d["id"] for d in data] == ["sim"] and data[0]["model_id"] == LM.model_id
    assert client.get("/health").json() == {"status": "ok"}


def test_letter_logprobs_come_from_score_choices(client: TestClient) -> None:
    req = render_choice("Should taxes be higher?", ["Yes", "Maybe", "No"], "You are very conservative.")
    messages = [m.to_dict() for m in req.messages]
    r = _chat(client, messages=messages, max_tokens=1, logprobs=True, top_logprobs=5).json()
    want = LM.score_choices([req])[0]
    top = r["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert {t["token"]: t["logprob"] for t in top} == {
        "A": want.logprobs[0],
        "B": want.logprobs[1],
        "C": want.logprobs[2],
    }
    assert r["choices"][0]["message"]["content"] == "ABC"[want.pred]
    assert r["usage"]["prompt_tokens"] == want.prompt_tokens


def test_generation_with_n_seeds_stop_and_prefill(client: TestClient) -> None:
    msgs = [{"role": "user", "content": "Tell me something."}]
    r = _chat(client, messages=msgs, max_tokens=6, temperature=0.9, seed=4, n=2).json()
    texts = [c["message"]["content"] for c in r["choices"]]
    want = LM.generate(
        [
            GenerationRequest((Message("user", "Tell me something."),), max_tokens=6, temperature=0.9, seed=s)
            for s in (4, 5)
        ]
    )
    assert texts == [w.text for w in want] and texts[0] != texts[1]
    assert r["usage"]["completion_tokens"] == sum(w.completion_tokens for w in want)
    cont = _chat(
        client, messages=[*msgs, {"role": "assistant", "content": "Well,"}], max_tokens=4, seed=1
    ).json()
    direct = LM.generate(
        [GenerationRequest((Message("user", "Tell me something."),), max_tokens=4, seed=1, prefill="Well,")]
    )
    assert cont["choices"][0]["message"]["content"] == direct[0].text
    # not a multiple-choice question and no next-token support: generated, logprobs null
    plain = _chat(client, messages=msgs, max_tokens=1, logprobs=True).json()
    assert plain["choices"][0]["logprobs"] is None


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"messages": []}, 400, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": -1}, 400, "temperature"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 400, "role"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": True}, 400, "stream"),
        ({"messages": [{"role": "system", "content": "x"}]}, 400, "must end with a user message"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, 400, "max_tokens"),
    ],
)
def test_bad_requests_are_clear_400s(client: TestClient, body: dict, status: int, fragment: str) -> None:
    r = _chat(client, **body)
    assert r.status_code == status
    assert fragment in r.json()["error"]["message"] and r.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404_and_garbage_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/chat/completions", json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}
    )
    assert r.status_code == 404 and "unknown model 'gpt-9'; available: sim" in r.json()["error"]["message"]
    assert client.post("/v1/chat/completions", content=b"not json").status_code == 400


def test_no_logprobs_mode_and_option_detection() -> None:
    client = TestClient(create_app(LM, served_name="sim", logprobs=False))
    req = render_choice("Q?", ["a", "b"])
    r = _chat(client, messages=[m.to_dict() for m in req.messages], max_tokens=1, logprobs=True).json()
    assert r["choices"][0]["logprobs"] is None and r["choices"][0]["message"]["content"] in ("A", "B")
    assert mc_options_count(format_question("Q?", ["x", "y", "z"])) == 3
    assert mc_options_count("A. first\nC. skipped B") == 1 and mc_options_count("hello") == 0
