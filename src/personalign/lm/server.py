"""An OpenAI-compatible HTTP server over any personalign :class:`LanguageModel`.

``create_app(lm)`` builds a FastAPI app; ``serve(lm)`` runs it with uvicorn (this is what
``personalign lm serve`` runs); ``python -m personalign.lm.server --model NAME`` serves a model
from :func:`personalign.lm.factory.get_lm`.

What is supported (everything else is a clear ``400``):

* ``GET /v1/models``: the one served model (its ``id`` is the served name; ``personalign`` adds
  ``model_id``, the exact weights). ``GET /health`` answers ``{"status": "ok"}``.
* ``POST /v1/chat/completions`` (no streaming) with ``model`` (the served name or the model id),
  ``messages`` (``system``/``user``/``assistant``; content a string or a list of ``text`` parts),
  ``max_tokens`` (or ``max_completion_tokens``), ``temperature``, ``top_p``, ``stop`` (a string or a
  list), ``seed`` (choice ``i`` of ``n`` uses ``seed + i``), ``n``, ``logprobs``, ``top_logprobs``.
  A final ``assistant`` message is a **prefill** the reply continues (as with vLLM's
  ``continue_final_message``; the reply excludes it).
* **Log-probabilities** are given in two cases, both only for ``logprobs=true`` with
  ``max_tokens == 1`` and no prefill:

  1. the last user turn is a lettered multiple-choice question (``A. …`` lines, as rendered by
     :mod:`personalign.lm.chat`): the answer comes from :meth:`LanguageModel.score_choices`, so
     it works for *every* backend. The top log-probabilities are the option letters (``"A"``,
     ``"B"``, …; nothing else) with their full-vocabulary log-probabilities, most likely first,
     and the reply is the most likely letter;
  2. otherwise, when the model can give its next-token distribution (see
     :func:`next_token_logprobs`: a ``next_token_logprobs(messages, top_k)`` method, or the
     transformers backend): the true ``top_logprobs`` most likely tokens.

  In every other case the answer is generated and ``logprobs`` is ``null``, as a server without
  log-probabilities answers (clients such as :class:`~personalign.lm.openai.OpenAILM` then fall
  back to generate-and-parse). ``create_app(lm, logprobs=False)`` (``--no-logprobs``) always
  answers ``null``.

Requests are served one at a time (a lock around the model): the wrapped models are not assumed
to be thread-safe.
"""

from __future__ import annotations

import argparse
import re
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from personalign.lm.base import (
    LETTERS,
    ChoiceRequest,
    GenerationRequest,
    LanguageModel,
    LMError,
    Message,
)

_OPTION_LINE = re.compile(r"^([A-Z])\.\s+\S")


class _ContentPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One message of a chat-completions request."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: str | list[_ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class ChatCompletionRequest(BaseModel):
    """The supported subset of OpenAI's chat-completions request (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=16)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream: bool = False
    continue_final_message: bool | None = None
    add_generation_prompt: bool | None = None

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop strings")
        return v


class BadRequest(ValueError):
    """A request the server cannot answer (becomes a 400 with this message)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _error(status: int, message: str, param: str | None = None, code: str | None = None):  # type: ignore[no-untyped-def]
    from fastapi.responses import JSONResponse

    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(status_code=status, content=body)


def mc_options_count(text: str) -> int:
    """How many consecutive lettered options (``A. …``, ``B. …``) ``text`` holds (0 if none)."""
    letters = [m.group(1) for line in text.splitlines() if (m := _OPTION_LINE.match(line.strip()))]
    n = 0
    while n < len(letters) and letters[n] == LETTERS[n]:
        n += 1
    return n


def _unwrap(lm: object) -> object:
    """The innermost model under wrappers such as CachedLM and RecordingLM (``.inner`` chains)."""
    while hasattr(lm, "inner") and not callable(getattr(lm, "next_token_logprobs", None)):
        lm = lm.inner  # type: ignore[attr-defined]
    return lm


def supports_next_token_logprobs(lm: object) -> bool:
    """Whether :func:`next_token_logprobs` works for ``lm``."""
    base = _unwrap(lm)
    if callable(getattr(base, "next_token_logprobs", None)):
        return True
    return all(hasattr(base, a) for a in ("encode_prompt", "last_logprobs", "tokenizer"))


def next_token_logprobs(lm: object, messages: Sequence[Message], top_k: int) -> list[tuple[str, float]]:
    """The ``top_k`` most likely next tokens after the chat's generation prompt, with log-probabilities.

    Uses the model's own ``next_token_logprobs(messages, top_k)`` if it has one, else the
    transformers backend's ``encode_prompt`` / ``last_logprobs`` / ``tokenizer``. Wrappers
    (``.inner``) are looked through, so such calls bypass a cache.
    """
    base = _unwrap(lm)
    own = getattr(base, "next_token_logprobs", None)
    if callable(own):
        return list(own(messages, top_k))
    row = base.last_logprobs([base.encode_prompt(messages)])[0]  # type: ignore[attr-defined]
    values, ids = row.topk(top_k)
    tok = base.tokenizer  # type: ignore[attr-defined]
    return [(tok.decode([int(i)]), float(v)) for v, i in zip(values, ids, strict=True)]


class _Engine:
    """Turns validated requests into LanguageModel calls (one at a time)."""

    def __init__(self, lm: LanguageModel, served_name: str, logprobs: bool) -> None:
        self.lm = lm
        self.served_name = served_name
        self.logprobs = logprobs
        self.lock = threading.Lock()

    def complete(self, req: ChatCompletionRequest) -> dict[str, Any]:
        if req.model not in (self.served_name, self.lm.model_id):
            raise LookupError(f"unknown model {req.model!r}; available: {self.served_name}")
        if req.stream:
            raise BadRequest("stream=true is not supported by this server", "stream")
        messages = tuple(Message(m.role, m.text()) for m in req.messages)
        prefill = ""
        if messages[-1].role == "assistant" and req.continue_final_message is not False:
            prefill = messages[-1].content
            messages = messages[:-1]
        if not messages or messages[-1].role != "user":
            raise BadRequest(
                "the chat must end with a user message (optionally followed by an assistant prefill)"
            )
        max_tokens = req.max_completion_tokens or req.max_tokens or 256
        top_k = req.top_logprobs if req.top_logprobs is not None else 1
        if self.logprobs and req.logprobs and max_tokens == 1 and not prefill:
            n_opt = mc_options_count(messages[-1].content)
            if n_opt >= 1:
                return self._letters(req, messages, n_opt, top_k)
            if supports_next_token_logprobs(self.lm):
                return self._next_token(req, messages, top_k)
        return self._generate(req, messages, prefill, max_tokens)

    def _letters(self, req: ChatCompletionRequest, messages: tuple[Message, ...], n_opt: int, top_k: int):  # type: ignore[no-untyped-def]
        with self.lock:
            result = self.lm.score_choices([ChoiceRequest(messages, n_opt)])[0]
        ranked = sorted(range(n_opt), key=lambda j: (-result.logprobs[j], j))
        entries = [(LETTERS[j], result.logprobs[j]) for j in ranked]
        return self._logprob_answer(req, entries, top_k, result.prompt_tokens)

    def _next_token(self, req: ChatCompletionRequest, messages: tuple[Message, ...], top_k: int):  # type: ignore[no-untyped-def]
        with self.lock:
            entries = next_token_logprobs(self.lm, messages, max(top_k, 1))
            prompt_tokens = sum(self.lm.count_tokens(m.content) for m in messages)
        return self._logprob_answer(req, list(entries), top_k, prompt_tokens)

    def _logprob_answer(self, req, entries: list[tuple[str, float]], top_k: int, prompt_tokens: int):  # type: ignore[no-untyped-def]
        finite = [(t, lp) for t, lp in entries if lp != float("-inf")] or entries[:1]
        token, lp = finite[0]
        safe = max(lp, -9999.0)
        top = [{"token": t, "logprob": max(v, -9999.0), "bytes": list(t.encode())} for t, v in finite[:top_k]]
        content = [{"token": token, "logprob": safe, "bytes": list(token.encode()), "top_logprobs": top}]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": token},
            "logprobs": {"content": content},
            "finish_reason": "length",
        }
        return self._wrap(req, [choice] * req.n, prompt_tokens, req.n)

    def _generate(self, req: ChatCompletionRequest, messages, prefill: str, max_tokens: int):  # type: ignore[no-untyped-def]
        stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
        seed = req.seed if req.seed is not None else 0
        try:
            gens = [
                GenerationRequest(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=req.temperature,
                    top_p=req.top_p,
                    stop=tuple(s for s in stop if s),
                    seed=seed + i,
                    prefill=prefill,
                )
                for i in range(req.n)
            ]
        except ValueError as err:
            raise BadRequest(str(err)) from err
        with self.lock:
            results = self.lm.generate(gens)
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": r.text},
                "logprobs": None,
                "finish_reason": r.finish_reason,
            }
            for i, r in enumerate(results)
        ]
        prompt_tokens = results[0].prompt_tokens if results else 0
        return self._wrap(req, choices, prompt_tokens, sum(r.completion_tokens for r in results))

    def _wrap(self, req, choices: list[dict[str, Any]], prompt_tokens: int, completion_tokens: int):  # type: ignore[no-untyped-def]
        choices = [{**c, "index": i} for i, c in enumerate(choices)]
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }


def create_app(lm: LanguageModel, served_name: str | None = None, logprobs: bool = True):  # type: ignore[no-untyped-def]
    """A FastAPI app serving ``lm`` under the OpenAI chat-completions API (see the module docstring).

    ``served_name`` is the model name clients send (default ``lm.model_id``); ``logprobs=False``
    makes it behave like a server without log-probabilities.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError

    engine = _Engine(lm, served_name or lm.model_id, logprobs)
    app = FastAPI(title="personalign OpenAI-compatible server", version="1")
    app.state.engine = engine

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):  # type: ignore[no-untyped-def]
        return _error(400, _describe_validation(exc.errors()), code="invalid_request")

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        entry = {
            "id": engine.served_name,
            "object": "model",
            "created": 0,
            "owned_by": "personalign",
            "model_id": lm.model_id,
            "backend": lm.backend,
        }
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    def chat_completions(body: dict[str, Any]):  # type: ignore[no-untyped-def]
        try:
            req = ChatCompletionRequest.model_validate(body)
        except ValidationError as err:
            return _error(400, _describe_validation(err.errors()), code="invalid_request")
        try:
            return engine.complete(req)
        except LookupError as err:
            return _error(404, str(err.args[0]), "model", "model_not_found")
        except BadRequest as err:
            return _error(400, str(err), err.param)
        except ValueError as err:
            return _error(400, str(err))
        except LMError as err:
            return _error(500, f"the model failed: {err}")

    return app


def _describe_validation(errors: Any) -> str:
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def serve(
    lm: LanguageModel,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_name: str | None = None,
    logprobs: bool = True,
    log_level: str = "warning",
) -> None:
    """Serve ``lm`` over HTTP until interrupted (blocks)."""
    import uvicorn

    uvicorn.run(create_app(lm, served_name, logprobs), host=host, port=port, log_level=log_level)


def main(argv: list[str] | None = None) -> None:
    """``python -m personalign.lm.server --model NAME [--port N] [--no-logprobs]``."""
    parser = argparse.ArgumentParser(
        prog="python -m personalign.lm.server", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", required=True, help="model name or path understood by get_lm")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-name", default=None, help="name clients use (default: --model)")
    parser.add_argument("--no-logprobs", action="store_true", help="never return log-probabilities")
    parser.add_argument("--cache", action="store_true", help="wrap the model in the LM-call cache")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    from personalign.lm.factory import get_lm

    lm = get_lm(args.model, cache=args.cache)
    serve(lm, args.host, args.port, args.served_name or args.model, not args.no_logprobs, args.log_level)


if __name__ == "__main__":
    main()
