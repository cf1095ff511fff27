"""The resumable per-user optimization state (``state.json``) and the round log (``rounds.jsonl``).

``state.json`` is rewritten atomically (temporary file + rename) after every round; it holds the
last complete round, the archive of every scored prompt (with correctness vectors), the memory,
counters, the best key per round (for early stop) and the config hash. ``rounds.jsonl`` gets one
JSON line per round: the meta-prompt, raw optimizer outputs, parse outcomes, candidate scores and
the memory after the update.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personalign.fermi.memory import ScoredPrompt

STATE_FORMAT = "personalign.fermi.run-state/v1"


class StateMismatchError(ValueError):
    """A saved state was made with a different config (or for a different user)."""


@dataclass
class FermiState:
    """Everything needed to continue one user's optimization after a crash.

    Attributes:
        user_id, task: whose run this is.
        config: the :class:`~personalign.fermi.config.FermiConfig` as a dict; ``config_hash`` its hash.
        models: model ids of the answering LM, optimizer LM and embedder.
        round: the last complete round (0: nothing done yet).
        finished: whether the run is over (``stop_reason`` says why).
        archive: every prompt scored for this user, in birth order.
        memory: births of the current top-L memory, best first.
        best_keys: the best sort key after each round (early stop).
        counters: optimizer calls, candidates parsed/accepted, rejections by reason, prompts scored.
    """

    user_id: str
    task: str
    config: dict[str, Any]
    config_hash: str
    models: dict[str, str]
    round: int = 0
    finished: bool = False
    stop_reason: str | None = None
    archive: list[ScoredPrompt] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)
    best_keys: list[list[float]] = field(default_factory=list)
    counters: dict[str, Any] = field(default_factory=dict)

    def by_birth(self) -> dict[int, ScoredPrompt]:
        return {sp.birth: sp for sp in self.archive}

    def memory_prompts(self) -> list[ScoredPrompt]:
        """The memory as scored prompts, best first."""
        births = self.by_birth()
        return [births[b] for b in self.memory]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "user_id": self.user_id,
            "task": self.task,
            "config": self.config,
            "config_hash": self.config_hash,
            "models": self.models,
            "round": self.round,
            "finished": self.finished,
            "stop_reason": self.stop_reason,
            "archive": [sp.to_dict() for sp in self.archive],
            "memory": self.memory,
            "best_keys": self.best_keys,
            "counters": self.counters,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str | Path = "state.json") -> FermiState:
        if d.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: field 'format': expected {STATE_FORMAT!r}, got {d.get('format')!r}")
        try:
            return cls(
                user_id=str(d["user_id"]),
                task=str(d["task"]),
                config=dict(d["config"]),
                config_hash=str(d["config_hash"]),
                models=dict(d["models"]),
                round=int(d["round"]),
                finished=bool(d["finished"]),
                stop_reason=d.get("stop_reason"),
                archive=[ScoredPrompt.from_dict(x) for x in d["archive"]],
                memory=[int(b) for b in d["memory"]],
                best_keys=[list(k) for k in d["best_keys"]],
                counters=dict(d["counters"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: not a valid Fermi run state ({type(err).__name__}: {err})") from err


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str | Path) -> Any:
    """Read a JSON file with a clear error naming the file on bad content."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from err


def load_state(path: str | Path) -> FermiState:
    return FermiState.from_dict(read_json(path), path)


def save_state(path: str | Path, state: FermiState) -> None:
    write_json_atomic(path, state.to_dict())


def append_round_log(path: str | Path, record: dict[str, Any]) -> None:
    """Append one round record as a JSON line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()


def truncate_round_log(path: str | Path, last_round: int) -> None:
    """Drop log lines for rounds after ``last_round`` (written before a crash, never committed)."""
    path = Path(path)
    if not path.exists():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rnd = int(json.loads(line).get("round", 0))
        except (ValueError, AttributeError):
            continue  # a torn last line from a crash
        if rnd <= last_round:
            keep.append(line)
    write_text = "".join(x + "\n" for x in keep)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(write_text, encoding="utf-8")
    os.replace(tmp, path)
