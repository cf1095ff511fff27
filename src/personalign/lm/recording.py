""":class:`RecordingLM`: a wrapper that records every call, for privacy (canary) tests.

Wrap the model a method uses, tag the calls with who they are for and in which phase, then assert
on what each user's calls contained::

    lm = RecordingLM(simulated)
    with lm.tagged(user="A", phase="optimize"):
        personalizer.fit(split_a)
    assert not any("CANARY-B" in c.text for c in lm.calls_where(user="A"))

Put it *outside* a :class:`~personalign.lm.cache.CachedLM` to see cache hits too. Tags live in a
:mod:`contextvars` variable, so nested ``tagged`` blocks merge and each thread (or asyncio task)
keeps its own. With ``log_path`` every call is also appended as one JSON line to that file (under
an exclusive file lock), so calls made in worker processes can be read back with
:meth:`RecordingLM.read_log`.
"""

from __future__ import annotations

import contextvars
import fcntl
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from personalign.lm.base import (
    ChoiceRequest,
    ChoiceResult,
    GenerationRequest,
    GenerationResult,
    LanguageModel,
    Message,
    RecordedCall,
)
from personalign.lm.usage import Usage


class RecordingLM:
    """Delegates to ``inner`` and appends a :class:`RecordedCall` per request to :attr:`calls`.

    A generation request's ``prefill`` is recorded as a trailing assistant message, since it is part
    of what the model sees.
    """

    def __init__(self, inner: LanguageModel, log_path: str | Path | None = None) -> None:
        self.inner = inner
        self.calls: list[RecordedCall] = []
        self.log_path = Path(log_path) if log_path is not None else None
        self._tags: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
            f"recording_tags_{id(self)}", default=None
        )
        self._lock = threading.Lock()

    # -- LanguageModel -------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return self.inner.backend

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        requests = list(requests)
        self._record([RecordedCall("score", r.messages, dict(self.tags)) for r in requests])
        return self.inner.score_choices(requests)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        requests = list(requests)
        recorded = []
        for r in requests:
            messages = r.messages + ((Message("assistant", r.prefill),) if r.prefill else ())
            recorded.append(RecordedCall("generate", messages, dict(self.tags)))
        self._record(recorded)
        return self.inner.generate(requests)

    # -- tags and queries ----------------------------------------------------------------------

    @property
    def tags(self) -> dict[str, str]:
        """The tags in force here (merged from all enclosing :meth:`tagged` blocks)."""
        return dict(self._tags.get() or {})

    @contextmanager
    def tagged(self, **tags: object) -> Iterator[RecordingLM]:
        """Tag every call made inside the block, e.g. ``with lm.tagged(user="A", phase="optimize")``."""
        token = self._tags.set({**(self._tags.get() or {}), **{k: str(v) for k, v in tags.items()}})
        try:
            yield self
        finally:
            self._tags.reset(token)

    def calls_where(self, **tags: object) -> list[RecordedCall]:
        """Recorded calls whose tags include all of ``tags`` (values compared as strings)."""
        want = {k: str(v) for k, v in tags.items()}
        with self._lock:
            calls = list(self.calls)
        return [c for c in calls if all(c.tags.get(k) == v for k, v in want.items())]

    def clear(self) -> None:
        """Forget the recorded calls (the log file, if any, is kept)."""
        with self._lock:
            self.calls.clear()

    def _record(self, calls: list[RecordedCall]) -> None:
        with self._lock:
            self.calls.extend(calls)
        if self.log_path is not None and calls:
            lines = "".join(json.dumps(_call_to_dict(c), ensure_ascii=False) + "\n" for c in calls)
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    f.write(lines)
                    f.flush()
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)

    @staticmethod
    def read_log(path: str | Path) -> list[RecordedCall]:
        """The calls appended to ``path`` by any number of :class:`RecordingLM` (any process)."""
        out = []
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    msgs = tuple(Message(role, content) for role, content in d["messages"])
                    out.append(RecordedCall(d["kind"], msgs, dict(d["tags"])))
                except (ValueError, KeyError, TypeError) as err:
                    raise ValueError(f"{path}:{lineno}: not a recorded call ({err})") from err
        return out


def _call_to_dict(call: RecordedCall) -> dict[str, object]:
    return {"kind": call.kind, "messages": [[m.role, m.content] for m in call.messages], "tags": call.tags}
