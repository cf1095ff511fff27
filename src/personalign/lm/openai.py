"""The ``openai`` backend: any OpenAI-compatible chat-completions server (vLLM, Ollama, llama.cpp
server, OpenAI itself, or ``personalign lm serve``).

* **Where:** ``base_url`` (including the ``/v1`` part) and ``api_key`` default to the environment
  variables ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``; without a base URL, OpenAI's own API.
* **Robustness:** every HTTP call has a timeout; 429, 5xx and connection errors are retried up to
  ``max_retries`` times with exponential backoff and jitter (a ``Retry-After`` header is honoured up
  to ``backoff_max``); other 4xx answers raise :class:`OpenAIHTTPError` at once with the status and
  the server's message; a server that stays down raises :class:`LMError` after the bounded retries.
  At most ``concurrency`` requests are in flight (a thread pool).
* **Scoring** (``scoring="auto"``): one chat completion with ``max_tokens=1, logprobs=true,
  top_logprobs=20``; an option's log-probability is the log-sum-exp of its letter tokens (``"A"``,
  ``" A"``, and the raw BPE/SentencePiece spellings ``"ĠA"``/``"▁A"``) among the returned top
  tokens, ``-inf`` if the letter is not among them (``method="logprobs"``). When the server gives
  no log-probabilities (or rejects the parameters), scoring falls back, once and for the rest of
  the object's life, to generate-and-parse (:mod:`personalign.lm.parse`, ``method="generate"``), and
  says so in a log warning. ``scoring="logprobs"`` makes a missing-logprobs server an error;
  ``scoring="generate"`` always parses.
* **Generation:** temperature, top-p, max tokens, stop strings and seed are sent as-is. A prefill
  is sent as a final assistant message with ``continue_final_message=true`` (vLLM and
  ``personalign lm serve`` understand it); if the server rejects that, the prefill is appended to
  the last user turn as an instruction instead, and a reply that starts with it has it removed.
* **Tokens:** usage comes from the server's ``usage`` field. :meth:`OpenAILM.count_tokens` uses the
  ``tokenizer`` you give (a callable ``str -> list`` or a Hugging Face tokenizer folder) and otherwise
  *approximates*: ``ceil(len(text) / 4)`` (OpenAI's rule of thumb of ~4 characters per token).
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import httpx

from personalign.lm.base import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    LMError,
    Message,
)
from personalign.lm.parse import FALLBACK_MAX_TOKENS, choice_result_from_text
from personalign.lm.usage import Usage

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
TOP_LOGPROBS = 20
RETRY_STATUSES = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
_LETTER_PREFIXES = ("", " ", "Ġ", "▁")


class OpenAIHTTPError(LMError):
    """The server answered with an error status that retrying will not fix (a 4xx)."""

    def __init__(self, message: str, status: int, server_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.server_message = server_message


def backoff_delay(
    attempt: int,
    base: float = 0.5,
    cap: float = 8.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` ("equal jitter" exponential backoff).

    The window is ``min(cap, base * 2**attempt)``; the delay is uniform in its upper half. A
    server's ``Retry-After`` raises the delay to that value, never above ``cap``.
    """
    window = min(cap, base * (2**attempt))
    delay = window / 2 + (rng or random).uniform(0, window / 2)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, retry_after)
    return min(cap, delay)


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _server_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if body.get("detail"):
            return str(body["detail"])
        if body.get("message"):
            return str(body["message"])
    return str(body)[:500]


def _logsumexp(values: Sequence[float]) -> float:
    if not values:
        return -math.inf
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def letter_logprobs(top: Sequence[tuple[str, float]], n_options: int) -> tuple[tuple[float, ...], float]:
    """Per-letter log-probabilities (log-sum-exp over its spellings) and the total letter mass.

    ``top`` is the ``(token, logprob)`` list a server returned for the answer position.
    """
    seen: dict[str, float] = {}
    for token, lp in top:
        seen.setdefault(token, float(lp))
    per_letter, mass = [], 0.0
    for j in range(n_options):
        letter = chr(ord("A") + j)
        lps = [seen[p + letter] for p in _LETTER_PREFIXES if p + letter in seen]
        per_letter.append(_logsumexp(lps))
        mass += sum(math.exp(lp) for lp in lps)
    return tuple(per_letter), min(1.0, mass)


def _top_logprobs(data: dict[str, Any]) -> list[tuple[str, float]] | None:
    """The answer position's ``(token, logprob)`` candidates from a chat completion, or ``None``."""
    try:
        lp = data["choices"][0].get("logprobs")
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if not isinstance(lp, dict):
        return None
    content = lp.get("content")
    if isinstance(content, list) and content:
        first = content[0]
        out = [(first["token"], first["logprob"])] if "token" in first and "logprob" in first else []
        out += [(t["token"], t["logprob"]) for t in first.get("top_logprobs") or [] if "token" in t]
        return out or None
    legacy = lp.get("top_logprobs")  # completions-style: [{token: logprob, …}, …]
    if isinstance(legacy, list) and legacy and isinstance(legacy[0], dict):
        return list(legacy[0].items()) or None
    return None


def _message_text(data: dict[str, Any]) -> tuple[str, str]:
    try:
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError) as err:
        raise LMError(
            f"malformed chat completion from the server (no choices[0].message): {data!r:.300}"
        ) from err
    return content, choice.get("finish_reason") or "stop"


class OpenAILM:
    """A :class:`~personalign.lm.base.LanguageModel` over an OpenAI-compatible HTTP server.

    Args:
        model: the model name the server knows.
        base_url: the API root including ``/v1`` (default ``$OPENAI_BASE_URL``, else OpenAI's).
        api_key: bearer token (default ``$OPENAI_API_KEY``; local servers usually need none).
        timeout: seconds per HTTP request.
        max_retries: retries after the first attempt on 429/5xx/connection errors.
        concurrency: requests in flight at once.
        scoring: ``"auto"`` (logprobs, falling back to generate-and-parse), ``"logprobs"`` or
            ``"generate"``.
        prefill: ``"auto"`` (assistant continuation, falling back to appending), ``"continue"`` or
            ``"append"``.
        tokenizer: for :meth:`count_tokens`: a callable returning a token list, or a Hugging Face
            tokenizer folder; ``None`` approximates (see the module docstring).
        model_id: the cache identity of the weights (default ``model``); add a revision if the
            server's model can change under the same name.
        backoff_base, backoff_max: backoff window of the first retry and the longest wait (seconds).
        transport: an ``httpx`` transport (for tests of the retry logic).
    """

    backend = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 4,
        concurrency: int = 4,
        scoring: Literal["auto", "logprobs", "generate"] = "auto",
        prefill: Literal["auto", "continue", "append"] = "auto",
        tokenizer: str | Path | Callable[[str], Sequence[Any]] | None = None,
        model_id: str | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if scoring not in ("auto", "logprobs", "generate"):
            raise ValueError(f"scoring must be 'auto', 'logprobs' or 'generate', got {scoring!r}")
        if prefill not in ("auto", "continue", "append"):
            raise ValueError(f"prefill must be 'auto', 'continue' or 'append', got {prefill!r}")
        if max_retries < 0 or concurrency < 1:
            raise ValueError("max_retries must be >= 0 and concurrency >= 1")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if self.base_url == DEFAULT_BASE_URL and not self.api_key:
            raise LMError(
                "OpenAI's API needs a key: set OPENAI_API_KEY, or point OPENAI_BASE_URL (or base_url=) "
                "at your own OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1"
            )
        self.timeout = timeout
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.scoring = scoring
        self.prefill_mode = prefill
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._model_id = model_id or model
        self.usage = Usage()
        self._logprobs_ok: bool | None = None if scoring == "auto" else scoring == "logprobs"
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self._rng = random.Random()
        self._sleep: Callable[[float], None] = time.sleep
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            headers=headers,
            transport=transport,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._pool: ThreadPoolExecutor | None = None

    # -- LanguageModel -------------------------------------------------------------------------

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def scoring_method(self) -> str:
        """``"logprobs"``, ``"generate"``, or ``"auto"`` while not yet known."""
        return {None: "auto", True: "logprobs", False: "generate"}[self._logprobs_ok]

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        return self._batch(self._score_one, requests)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return self._batch(self._generate_one, requests)

    def count_tokens(self, text: str) -> int:
        tok = self._tokenizer
        if tok is None:
            return max(1, math.ceil(len(text) / 4)) if text else 0
        if isinstance(tok, str | Path):
            from transformers import AutoTokenizer

            hf = AutoTokenizer.from_pretrained(str(tok))
            self._tokenizer = tok = lambda s: hf.encode(s, add_special_tokens=False)
        return len(tok(text))  # type: ignore[operator]

    def close(self) -> None:
        """Close the HTTP client and the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self._client.close()

    def __enter__(self) -> OpenAILM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- batching ------------------------------------------------------------------------------

    def _batch(self, fn: Callable[[Any], Any], requests: Sequence[Any]) -> list[Any]:
        requests = list(requests)
        if not requests:
            return []
        start = time.perf_counter()
        try:
            if len(requests) == 1 or self.concurrency == 1:
                return [fn(r) for r in requests]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="openai-lm")
            futures: list[Future[Any]] = [self._pool.submit(fn, r) for r in requests]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
        finally:
            with self._lock:
                self.usage.seconds += time.perf_counter() - start

    # -- HTTP ----------------------------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``base_url + path`` with retries; return the JSON answer."""
        url = f"{self.base_url}/{path.lstrip('/')}"
        start = time.perf_counter()
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                resp = self._client.post(url, json=body)
            except httpx.TransportError as err:
                last = f"{type(err).__name__}: {err or 'no detail'}"
            else:
                if resp.status_code < 400:
                    try:
                        data = resp.json()
                    except ValueError as err:
                        raise LMError(
                            f"{url} answered {resp.status_code} with non-JSON: {resp.text[:200]!r}"
                        ) from err
                    self._count(data)
                    return data
                message = _server_message(resp)
                if resp.status_code not in RETRY_STATUSES:
                    raise OpenAIHTTPError(
                        f"{url} rejected the request: HTTP {resp.status_code}: {message}",
                        resp.status_code,
                        message,
                    )
                last = f"HTTP {resp.status_code}: {message}"
                retry_after = _retry_after(resp)
            if attempt < self.max_retries:
                delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, retry_after, self._rng)
                log.debug("%s failed (%s); retry %d in %.2fs", url, last, attempt + 1, delay)
                self._sleep(delay)
        raise LMError(
            f"the OpenAI-compatible server at {self.base_url} failed {self.max_retries + 1} attempts over "
            f"{time.perf_counter() - start:.1f}s; last error: {last}. Is the server running and reachable?"
        )

    def _count(self, data: dict[str, Any]) -> None:
        usage = data.get("usage") if isinstance(data, dict) else None
        with self._lock:
            self.usage.calls += 1
            if isinstance(usage, dict):
                self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
                self.usage.generated_tokens += int(usage.get("completion_tokens") or 0)

    def _chat(self, messages: Sequence[Message], **params: Any) -> dict[str, Any]:
        body = {"model": self.model, "messages": [m.to_dict() for m in messages], **params}
        return self.post("chat/completions", body)

    # -- scoring -------------------------------------------------------------------------------

    def _score_one(self, request: ChoiceRequest) -> ChoiceResult:
        if self._logprobs_ok is not False:
            try:
                data = self._chat(
                    request.messages, max_tokens=1, temperature=0, logprobs=True, top_logprobs=TOP_LOGPROBS
                )
            except OpenAIHTTPError as err:
                if self.scoring != "auto" or err.status in (401, 403, 404):
                    raise
                result = self._score_by_generation(request)  # raises if the request itself is bad
                self._no_logprobs(f"it rejected the logprobs parameters: {err.server_message}")
                return result
            top = _top_logprobs(data)
            if top is not None:
                self._logprobs_ok = True
                logprobs, mass = letter_logprobs(top, request.n_options)
                text, _ = _message_text(data)
                prompt_tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
                return ChoiceResult(logprobs, mass, "logprobs", prompt_tokens, text)
            if self.scoring == "logprobs":
                raise LMError(
                    f"the server at {self.base_url} returned no logprobs for model {self.model!r}; "
                    "use scoring='auto' or 'generate' to parse generated answers instead"
                )
            self._no_logprobs("its answers carry no logprobs")
        return self._score_by_generation(request)

    def _no_logprobs(self, why: str) -> None:
        with self._lock:
            first = self._logprobs_ok is not False
            self._logprobs_ok = False
        if first:
            log.warning(
                "%s at %s gives no letter log-probabilities (%s); scoring falls back to generate-and-parse "
                "(ChoiceResult.method='generate', one-hot probabilities)",
                self.model,
                self.base_url,
                why,
            )

    def _score_by_generation(self, request: ChoiceRequest) -> ChoiceResult:
        data = self._chat(request.messages, max_tokens=FALLBACK_MAX_TOKENS, temperature=0)
        text, _ = _message_text(data)
        prompt_tokens = int((data.get("usage") or {}).get("prompt_tokens") or 0)
        return choice_result_from_text(text, request, prompt_tokens)

    # -- generation ----------------------------------------------------------------------------

    def _generate_one(self, request: GenerationRequest) -> GenerationResult:
        params: dict[str, Any] = {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if request.stop:
            params["stop"] = list(request.stop)
        messages = request.messages
        strip_prefix = ""
        if request.prefill:
            if self.prefill_mode != "append":
                try:
                    data = self._chat(
                        (*messages, Message("assistant", request.prefill)),
                        continue_final_message=True,
                        add_generation_prompt=False,
                        **params,
                    )
                    return self._generation_result(data)
                except OpenAIHTTPError as err:
                    if self.prefill_mode == "continue" or err.status not in (400, 422):
                        raise
                    log.warning(
                        "%s rejected an assistant prefill (%s); appending prefills to the prompt instead",
                        self.base_url,
                        err.server_message,
                    )
                    self.prefill_mode = "append"
            last = messages[-1]
            note = f"\n\nBegin your reply with exactly: {request.prefill}"
            messages = (*messages[:-1], Message(last.role, last.content + note))
            strip_prefix = request.prefill
        data = self._chat(messages, **params)
        return self._generation_result(data, strip_prefix)

    def _generation_result(self, data: dict[str, Any], strip_prefix: str = "") -> GenerationResult:
        text, finish = _message_text(data)
        if strip_prefix and text.startswith(strip_prefix):
            text = text[len(strip_prefix) :]
        usage = data.get("usage") or {}
        return GenerationResult(
            text=text,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reason="length" if finish == "length" else "stop",
        )
