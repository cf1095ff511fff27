"""The ``openai`` backend.

Unit tests of the HTTP logic (retries, backoff, 4xx errors, logprob parsing) run against an
``httpx.MockTransport``. The integration tests (``@pytest.mark.model``) start a **real** server,
``python -m personalign.lm.server --model smollm2-135m``, on 127.0.0.1 in a subprocess and compare
its answers with the same model loaded in-process.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from personalign.lm.base import GenerationRequest, LanguageModel, LMError, Message
from personalign.lm.chat import render_choice
from personalign.lm.openai import OpenAIHTTPError, OpenAILM, backoff_delay, letter_logprobs
from personalign.lm.parse import FALLBACK_MAX_TOKENS, choice_result_from_text

from .contract import check_choice_contract, check_generation_contract

# -- unit tests: retry, backoff, errors ---------------------------------------------------------------


def _completion(content: str = "B", logprobs: object = None) -> dict:
    return {
        "choices": [
            {
                "message": {"role": "assistant", "content": content},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1},
    }


def _client(handler, **kw) -> tuple[OpenAILM, list[float]]:  # type: ignore[no-untyped-def]
    lm = OpenAILM("m", base_url="http://test/v1", transport=httpx.MockTransport(handler), **kw)
    sleeps: list[float] = []
    lm._sleep = sleeps.append
    return lm, sleeps


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    import random

    rng = random.Random(0)
    for attempt in range(6):
        window = min(8.0, 0.5 * 2**attempt)
        for _ in range(50):
            d = backoff_delay(attempt, 0.5, 8.0, rng=rng)
            assert window / 2 <= d <= window
    assert len({backoff_delay(2, rng=rng) for _ in range(20)}) > 1  # jittered
    assert backoff_delay(0, 0.5, 8.0, retry_after=3.0) == 3.0  # Retry-After honoured
    assert backoff_delay(0, 0.5, 8.0, retry_after=60.0) == 8.0  # but never beyond the cap


def test_429_and_5xx_are_retried_then_succeed() -> None:
    statuses = iter([429, 503, 200])
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        status = next(statuses)
        if status != 200:
            return httpx.Response(status, json={"error": {"message": "busy"}}, headers={"Retry-After": "0.2"})
        return httpx.Response(200, json=_completion("hello"))

    lm, sleeps = _client(handler, max_retries=4, backoff_base=0.1)
    out = lm.generate([GenerationRequest((Message("user", "hi"),), max_tokens=5, seed=3, stop=("\n",))])
    assert out[0].text == "hello" and out[0].prompt_tokens == 10
    assert len(seen) == 3 and len(sleeps) == 2 and all(s >= 0.2 for s in sleeps)
    assert seen[0]["seed"] == 3 and seen[0]["stop"] == ["\n"] and seen[0]["max_tokens"] == 5
    assert lm.usage.calls == 1 and lm.usage.generated_tokens == 1


def test_server_that_stays_down_gives_a_clear_error_after_bounded_retries() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    lm, sleeps = _client(handler, max_retries=3, backoff_base=0.1, backoff_max=1.0)
    with pytest.raises(LMError, match=r"failed 4 attempts.*ConnectError.*Is the server running"):
        lm.score_choices([render_choice("Q?", ["a", "b"])])
    assert len(calls) == 4 and len(sleeps) == 3 and sum(sleeps) <= 0.05 + 0.1 + 0.2 + 0.4 + 1e-9


def test_4xx_fails_at_once_with_status_and_server_message() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(401, json={"error": {"message": "Incorrect API key provided"}})

    lm, sleeps = _client(handler)
    with pytest.raises(OpenAIHTTPError, match="HTTP 401: Incorrect API key provided") as info:
        lm.generate([GenerationRequest((Message("user", "hi"),))])
    assert info.value.status == 401 and len(calls) == 1 and sleeps == []


def test_letter_logprobs_merge_spellings_and_read_the_server_format() -> None:
    top = [("A", math.log(0.5)), (" A", math.log(0.2)), ("ĠB", math.log(0.1)), ("The", math.log(0.1))]
    lps, mass = letter_logprobs(top, 3)
    assert lps[0] == pytest.approx(math.log(0.7)) and lps[1] == pytest.approx(math.log(0.1))
    assert lps[2] == -math.inf and mass == pytest.approx(0.8)
    content = [
        {
            "token": "A",
            "logprob": math.log(0.5),
            "top_logprobs": [
                {"token": "A", "logprob": math.log(0.5)},
                {"token": "B", "logprob": math.log(0.3)},
            ],
        }
    ]

    lm, _ = _client(lambda r: httpx.Response(200, json=_completion("A", {"content": content})))
    r = lm.score_choices([render_choice("Q?", ["x", "y"])])[0]
    assert (
        r.method == "logprobs"
        and r.probs == pytest.approx((0.625, 0.375))
        and r.letter_mass == pytest.approx(0.8)
    )


def test_auto_scoring_falls_back_to_generate_and_parse_without_logprobs(caplog) -> None:  # type: ignore[no-untyped-def]
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=_completion("I pick C."))  # logprobs: null

    lm, _ = _client(handler, concurrency=1)
    reqs = [render_choice("Q?", ["x", "y", "z"]), render_choice("R?", ["x", "y", "z"])]
    with caplog.at_level("WARNING", logger="personalign.lm.openai"):
        out = lm.score_choices(reqs)
    assert [r.method for r in out] == ["generate", "generate"] and [r.pred for r in out] == [2, 2]
    assert lm.scoring_method == "generate"
    assert bodies[0]["logprobs"] is True and bodies[1]["max_tokens"] == FALLBACK_MAX_TOKENS
    assert "logprobs" not in bodies[2]  # the second request goes straight to generation
    assert sum("falls back to generate-and-parse" in r.message for r in caplog.records) == 1

    strict, _ = _client(handler, scoring="logprobs")
    with pytest.raises(LMError, match="returned no logprobs"):
        strict.score_choices(reqs[:1])


def test_prefill_falls_back_to_appending_when_continuation_is_rejected() -> None:
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if body.get("continue_final_message"):
            return httpx.Response(400, json={"error": {"message": "Unrecognized request argument"}})
        return httpx.Response(200, json=_completion("Sure, here it is"))

    lm, _ = _client(handler)
    out = lm.generate([GenerationRequest((Message("user", "hi"),), prefill="Sure,")])
    assert out[0].text == " here it is"
    assert bodies[0]["messages"][-1] == {"role": "assistant", "content": "Sure,"}
    assert bodies[1]["messages"][-1]["content"].endswith("Begin your reply with exactly: Sure,")
    assert lm.prefill_mode == "append"


def test_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://example.invalid:1234/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    seen = []
    lm = OpenAILM(
        "m",
        transport=httpx.MockTransport(lambda r: seen.append(r) or httpx.Response(200, json=_completion())),
    )
    lm.generate([GenerationRequest((Message("user", "x"),))])
    assert str(seen[0].url) == "http://example.invalid:1234/v1/chat/completions"
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(LMError, match="OPENAI_API_KEY"):
        OpenAILM("gpt-4o-mini")
    assert OpenAILM("m", base_url="http://x/v1").count_tokens("12345678") == 2  # ~4 chars per token


# -- integration: a real server on 127.0.0.1 ------------------------------------------------------------

MODEL = "smollm2-135m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    url: str

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def start_server(*extra: str, timeout: float = 240) -> Server:
    """``python -m personalign.lm.server --model smollm2-135m`` on a free port; waits for /health."""
    port = _free_port()
    # one torch thread: the server answers one request at a time, matches the in-process model's
    # setting in these tests, and does not fight the test process for the CPU cores
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "personalign.lm.server", "--model", MODEL, "--port", str(port), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = Server(proc, f"http://127.0.0.1:{port}/v1")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"the server exited with {proc.returncode}:\n{proc.stdout.read()[-3000:]}", pytrace=False
            )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    server.stop()
    pytest.fail(f"the server did not answer within {timeout}s:\n{proc.stdout.read()[-3000:]}", pytrace=False)


class ServerPool:
    """A server per configuration, started on first use and restarted if a test killed it."""

    def __init__(self, *extra: str) -> None:
        self.extra = extra
        self.current: Server | None = None

    def get(self) -> Server:
        if self.current is None or self.current.proc.poll() is not None:
            self.current = start_server(*self.extra)
        return self.current

    def stop(self) -> None:
        if self.current is not None:
            self.current.stop()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the in-process model with one torch thread, like the servers (same numerics, no contention)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def local_lm() -> LanguageModel:
    from personalign.lm.factory import get_lm

    return get_lm(MODEL, cache=False)


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    pool = ServerPool()
    yield pool.get()
    pool.stop()


@pytest.fixture(scope="session")
def no_logprobs_servers() -> Iterator[ServerPool]:
    pool = ServerPool("--no-logprobs")
    yield pool
    pool.stop()


QUESTIONS = [
    render_choice(
        "How much, if at all, do you think the federal government should regulate artificial intelligence?",
        ["A great deal", "A fair amount", "Not too much", "Not at all"],
        "You are a 70-year-old retired farmer from rural Iowa.",
    ),
    render_choice("Which season do you like best?", ["Spring", "Summer", "Autumn", "Winter"]),
    render_choice("Is the sky blue on a clear day?", ["Yes", "No"]),
]


@pytest.mark.model
def test_scoring_over_logprobs_matches_the_in_process_model(server: Server, local_lm: LanguageModel) -> None:
    with OpenAILM(MODEL, base_url=server.url, timeout=60) as remote:
        got = remote.score_choices(QUESTIONS)
        assert remote.scoring_method == "logprobs"
    # the server scores one request per HTTP call, so compare with one-by-one scoring in-process
    with one_thread():
        want = [local_lm.score_choices([q])[0] for q in QUESTIONS]
    for g, w in zip(got, want, strict=True):
        assert g.method == "logprobs"
        assert g.logprobs == pytest.approx(w.logprobs, abs=1e-4)
        assert g.letter_mass == pytest.approx(w.letter_mass, abs=1e-4) and g.pred == w.pred
        assert g.prompt_tokens == w.prompt_tokens > 0
    assert remote.usage.calls == 3 and remote.usage.prompt_tokens == sum(w.prompt_tokens for w in want)
    models = httpx.get(f"{server.url}/models", timeout=10).json()
    assert models["data"][0]["id"] == MODEL and models["data"][0]["model_id"] == local_lm.model_id


@pytest.mark.model
def test_scoring_falls_back_to_generate_and_parse(
    no_logprobs_servers: ServerPool, local_lm: LanguageModel
) -> None:
    with OpenAILM(MODEL, base_url=no_logprobs_servers.get().url, concurrency=1) as remote:
        got = remote.score_choices(QUESTIONS)
        assert remote.scoring_method == "generate"
    with one_thread():
        greedy = local_lm.generate(
            [GenerationRequest(q.messages, max_tokens=FALLBACK_MAX_TOKENS, temperature=0) for q in QUESTIONS]
        )
    for g, q, text in zip(got, QUESTIONS, greedy, strict=True):
        assert g.method == "generate" and g.raw_text == text.text
        assert g.pred == choice_result_from_text(text.text, q).pred


@pytest.mark.model
def test_generation_matches_the_in_process_model(server: Server, local_lm: LanguageModel) -> None:
    msgs = (Message("system", "You are terse."), Message("user", "Name three colours."))
    reqs = [
        GenerationRequest(msgs, max_tokens=16, temperature=0.8, top_p=0.95, seed=7),
        GenerationRequest(msgs, max_tokens=16, temperature=0),
        GenerationRequest(msgs, max_tokens=16, temperature=0, prefill="Red,", stop=("\n",)),
    ]
    with OpenAILM(MODEL, base_url=server.url, concurrency=2) as remote:
        got = remote.generate(reqs)
        again = remote.generate(reqs[:1])
    with one_thread():
        want = local_lm.generate(reqs)
    assert [g.text for g in got] == [w.text for w in want] and all(g.text for g in got)
    assert again[0].text == got[0].text  # reproducible under a seed
    assert [g.completion_tokens for g in got] == [w.completion_tokens for w in want]
    assert (
        remote.usage.generated_tokens == sum(w.completion_tokens for w in want) + again[0].completion_tokens
    )


@pytest.mark.model
def test_openai_backend_meets_the_language_model_contract(server: Server) -> None:
    with OpenAILM(MODEL, base_url=server.url, concurrency=2) as remote:
        check_choice_contract(remote)
        check_generation_contract(remote)


@pytest.mark.model
def test_next_token_logprobs_and_bad_requests(server: Server) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": 1,
        "logprobs": True,
        "top_logprobs": 5,
    }
    r = httpx.post(f"{server.url}/chat/completions", json=body, timeout=60).json()
    top = r["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert len(top) == 5 and [t["logprob"] for t in top] == sorted((t["logprob"] for t in top), reverse=True)
    assert 0 < sum(math.exp(t["logprob"]) for t in top) <= 1 + 1e-6
    assert r["choices"][0]["message"]["content"] == top[0]["token"]

    remote = OpenAILM("no-such-model", base_url=server.url, max_retries=3)
    start = time.monotonic()
    with pytest.raises(
        OpenAIHTTPError, match="HTTP 404: unknown model 'no-such-model'; available: smollm2-135m"
    ):
        remote.score_choices(QUESTIONS[:1])
    with pytest.raises(OpenAIHTTPError, match=r"HTTP 400: invalid request: messages") as info:
        remote.post("chat/completions", {"model": MODEL, "messages": []})
    assert info.value.status == 400 and time.monotonic() - start < 5  # no retries on 4xx
    bad = httpx.post(
        f"{server.url}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": -1},
        timeout=10,
    )
    assert bad.status_code == 400 and "temperature" in bad.json()["error"]["message"]


@pytest.mark.model
def test_server_killed_mid_run_gives_a_clear_error_after_bounded_retries(
    no_logprobs_servers: ServerPool,
) -> None:
    s = no_logprobs_servers.get()  # this test kills it; the pool restarts it for any later user
    remote = OpenAILM(
        MODEL, base_url=s.url, max_retries=2, backoff_base=0.2, backoff_max=1.0, timeout=60, concurrency=2
    )
    reqs = [
        GenerationRequest((Message("user", f"Count to {i}."),), max_tokens=8, temperature=0)
        for i in range(40)
    ]
    killed_at: list[float] = []

    def kill_after_two_answers() -> None:
        deadline = time.monotonic() + 120
        while remote.usage.calls < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        s.proc.send_signal(signal.SIGKILL)
        killed_at.append(time.monotonic())

    killer = threading.Thread(target=kill_after_two_answers)
    killer.start()
    try:
        with pytest.raises(LMError, match=r"failed 3 attempts .*last error: .*Is the server running"):
            remote.generate(reqs)
        failed_at = time.monotonic()
    finally:
        killer.join(130)
    assert 2 <= remote.usage.calls < len(reqs)  # killed mid-run, after some answers
    # 3 attempts with backoff windows 0.2 s and 0.4 s: the error comes within seconds of the kill
    assert failed_at - killed_at[0] < 5.0
