"""A persistent cache of LM calls: :class:`CachedLM` wraps any :class:`LanguageModel`.

Each request is keyed by the sha256 of its canonical JSON form: cache format version, backend,
``model_id`` of the wrapped model, call kind, the full messages, and the parameters that change the
answer (``n_options`` for scoring; ``max_tokens``, ``temperature``, ``top_p``, ``stop``, ``prefill``
and ``seed`` for generation). Greedy decoding (``temperature == 0``) ignores the seed and top-p, so
those are left out of its key; seeded sampling is deterministic, so it is cached under its seed.

Values are JSON (``-inf`` log-probabilities stored as ``null``), in a :class:`SQLiteStore` (WAL,
busy timeout: several processes may share one file). Default file:
``personalign.paths.cache_dir() / "lm_calls.sqlite"``.

Only the misses of a batch go to the wrapped model, in one batch, and the answers are merged back
in request order. A request repeated inside one batch is sent once.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from personalign.lm.base import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    LanguageModel,
    Message,
)
from personalign.lm.usage import Usage
from personalign.paths import cache_dir
from personalign.sqlite_store import CacheCorruptedError, RebuildReport, SQLiteStore

__all__ = ["CacheCorruptedError", "CachedLM", "default_cache_path", "request_key"]

CACHE_FORMAT = "personalign-lm-calls/1"
_KEY_VERSION = 1


def default_cache_path() -> Path:
    """``cache_dir() / "lm_calls.sqlite"`` (``PERSONALIGN_CACHE`` moves the cache root)."""
    return cache_dir() / "lm_calls.sqlite"


def _messages(messages: Sequence[Message]) -> list[list[str]]:
    return [[m.role, m.content] for m in messages]


def request_key(backend: str, model_id: str, request: ChoiceRequest | GenerationRequest) -> str:
    """The cache key of ``request`` sent to ``backend``/``model_id`` (hex sha256)."""
    body: dict[str, Any] = {"v": _KEY_VERSION, "backend": backend, "model_id": model_id}
    if isinstance(request, ChoiceRequest):
        body |= {"kind": "score", "messages": _messages(request.messages), "n_options": request.n_options}
    elif isinstance(request, GenerationRequest):
        greedy = request.temperature == 0
        body |= {
            "kind": "generate",
            "messages": _messages(request.messages),
            "max_tokens": request.max_tokens,
            "temperature": float(request.temperature),
            "top_p": None if greedy else float(request.top_p),
            "stop": list(request.stop),
            "seed": None if greedy else request.seed,
            "prefill": request.prefill,
        }
    else:
        raise TypeError(f"not a ChoiceRequest or GenerationRequest: {type(request).__name__}")
    canonical = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _encode_choice(r: ChoiceResult) -> str:
    return json.dumps(
        {
            "logprobs": [None if lp == -math.inf else lp for lp in r.logprobs],
            "letter_mass": r.letter_mass,
            "method": r.method,
            "prompt_tokens": r.prompt_tokens,
            "raw_text": r.raw_text,
        },
        allow_nan=False,
    )


def _decode_choice(v: dict[str, Any]) -> ChoiceResult:
    return ChoiceResult(
        logprobs=tuple(-math.inf if lp is None else float(lp) for lp in v["logprobs"]),
        letter_mass=float(v["letter_mass"]),
        method=v["method"],
        prompt_tokens=int(v["prompt_tokens"]),
        raw_text=v["raw_text"],
    )


def _encode_generation(r: GenerationResult) -> str:
    return json.dumps(
        {
            "text": r.text,
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "finish_reason": r.finish_reason,
        }
    )


def _decode_generation(v: dict[str, Any]) -> GenerationResult:
    return GenerationResult(
        text=v["text"],
        prompt_tokens=int(v["prompt_tokens"]),
        completion_tokens=int(v["completion_tokens"]),
        finish_reason=v["finish_reason"],
    )


def _valid_entry(raw: object) -> bool:
    try:
        value = json.loads(raw)  # type: ignore[arg-type]
        (_decode_choice if "logprobs" in value else _decode_generation)(value)
    except (ValueError, KeyError, TypeError):
        return False
    return True


class CachedLM:
    """Wraps ``inner`` with a persistent SQLite cache of its answers.

    ``path`` defaults to :func:`default_cache_path`; ``enabled=False`` passes every call straight
    through (nothing is read or written). ``usage`` is the wrapped model's usage plus this cache's
    ``cache_hits``/``cache_misses`` (a fresh :class:`Usage` each time it is read).
    A damaged cache file raises :class:`CacheCorruptedError` naming the file; :meth:`rebuild` fixes it.
    """

    def __init__(self, inner: LanguageModel, path: str | Path | None = None, enabled: bool = True) -> None:
        self.inner = inner
        self.enabled = enabled
        self.path = Path(path) if path is not None else default_cache_path()
        self.cache_usage = Usage()
        self._count_lock = threading.Lock()
        self._store = (
            SQLiteStore(
                self.path,
                CACHE_FORMAT,
                what="LM-call cache",
                rebuild_call="personalign.lm.cache.CachedLM.rebuild",
            )
            if enabled
            else None
        )

    # -- LanguageModel -------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.inner.backend

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def usage(self) -> Usage:
        """The wrapped model's calls/tokens/seconds plus this cache's hits and misses."""
        return self.inner.usage.copy().add(self.cache_usage)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        return self._cached(requests, self.inner.score_choices, _encode_choice, _decode_choice)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return self._cached(requests, self.inner.generate, _encode_generation, _decode_generation)

    # -- cache ---------------------------------------------------------------------------------

    def _cached(self, requests, call, encode, decode):  # type: ignore[no-untyped-def]
        requests = list(requests)
        if self._store is None:
            return call(requests)
        keys = [request_key(self.inner.backend, self.inner.model_id, r) for r in requests]
        stored = self._store.get_many(keys)
        results: dict[str, Any] = {}
        for key, raw in stored.items():
            try:
                results[key] = decode(json.loads(raw))
            except (ValueError, KeyError, TypeError) as err:
                raise self._store.corrupted(f"entry {key[:12]}…: {err}") from err
        todo: dict[str, Any] = {}
        for key, req in zip(keys, requests, strict=True):
            if key not in results and key not in todo:
                todo[key] = req
        if todo:
            answers = call(list(todo.values()))
            if len(answers) != len(todo):
                raise RuntimeError(f"{self.inner.backend} returned {len(answers)} results for {len(todo)}")
            self._store.put_many((k, encode(a)) for k, a in zip(todo, answers, strict=True))
            results.update(zip(todo, answers, strict=True))
        with self._count_lock:
            self.cache_usage.cache_misses += len(todo)
            self.cache_usage.cache_hits += len(requests) - len(todo)
        return [results[k] for k in keys]

    def n_entries(self) -> int:
        """Number of entries in the cache file (all models)."""
        return len(self._store) if self._store is not None else 0

    def clear(self) -> None:
        """Delete every cached entry (for all models) from the file."""
        if self._store is not None:
            self._store.clear()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    @staticmethod
    def rebuild(path: str | Path | None = None) -> RebuildReport:
        """Rebuild a damaged cache file (default: the default path), keeping its readable entries.

        The damaged file is moved aside to ``<name>.corrupt-<time>``. Run it while no other
        process uses the cache.
        """
        return SQLiteStore.rebuild(
            path if path is not None else default_cache_path(), CACHE_FORMAT, _valid_entry
        )
