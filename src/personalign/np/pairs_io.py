"""Reading preference pairs for ``personalign np score`` from JSON Lines files.

Context files (one user's known choices), one object per line, either numeric features or text::

    {"chosen": [0.31], "rejected": [0.72]}
    {"prompt": "How do I …?", "chosen": "Try …", "rejected": "No."}

Pair files (what to score): ``{"a": [...], "b": [...]}`` or ``{"prompt": ..., "a": "...", "b": "..."}``;
an optional ``"id"`` is echoed in the output. Every problem is reported as a
:class:`~personalign.data.errors.DataError` naming the file, line and field.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalign.data.errors import DataError


@dataclass(frozen=True)
class PairRecords:
    """Parsed pairs: ``numeric`` -> ``first``/``second`` are lists of float vectors; text -> strings
    with ``prompts``."""

    numeric: bool
    first: list[Any]
    second: list[Any]
    prompts: list[str]
    ids: list[Any]


def _vector(value: Any, path: Path, line: int, field: str, dim: int | None) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise DataError(
            "not a feature vector",
            path=path,
            line=line,
            field=field,
            expected="a non-empty list of numbers",
            got=value,
        )
    if any(not math.isfinite(float(v)) for v in value):
        raise DataError(
            "feature vector has NaN/inf",
            path=path,
            line=line,
            field=field,
            expected="finite numbers",
            got=value,
        )
    if dim is not None and len(value) != dim:
        raise DataError(
            "wrong feature dimension",
            path=path,
            line=line,
            field=field,
            expected=f"{dim} numbers (the model's feature_dim)",
            got=len(value),
        )
    return [float(v) for v in value]


def read_pairs(path: str | Path, keys: tuple[str, str], *, dim: int | None, allow_empty: bool) -> PairRecords:
    """Parse a JSONL file whose records carry the two options under ``keys`` (``("chosen",
    "rejected")`` for contexts, ``("a", "b")`` for pairs to score)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    first, second, prompts, ids = [], [], [], []
    numeric: bool | None = None
    with path.open(encoding="utf-8") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON ({err.msg})", path=path, line=line_no) from err
            if not isinstance(rec, dict):
                raise DataError("not a JSON object", path=path, line=line_no, expected="an object", got=rec)
            for k in keys:
                if k not in rec:
                    raise DataError(
                        "missing field",
                        path=path,
                        line=line_no,
                        field=k,
                        expected=f"fields {keys[0]!r} and {keys[1]!r}",
                    )
            is_text = isinstance(rec[keys[0]], str)
            if numeric is None:
                numeric = not is_text
            elif numeric == is_text:
                raise DataError(
                    "mixes text and numeric records",
                    path=path,
                    line=line_no,
                    field=keys[0],
                    expected="the same kind of record on every line",
                )
            if is_text:
                for k in (*keys, "prompt"):
                    v = rec.get(k)
                    if not isinstance(v, str) or (k != "prompt" and not v.strip()):
                        raise DataError(
                            "not a non-empty string",
                            path=path,
                            line=line_no,
                            field=k,
                            expected="a string (responses non-empty)",
                            got=v,
                        )
                first.append(rec[keys[0]])
                second.append(rec[keys[1]])
                prompts.append(rec["prompt"])
            else:
                first.append(_vector(rec[keys[0]], path, line_no, keys[0], dim))
                second.append(_vector(rec[keys[1]], path, line_no, keys[1], dim))
                prompts.append("")
            ids.append(rec.get("id", len(ids)))
    if not first and not allow_empty:
        raise DataError("no pairs", path=path, expected="at least one JSON object line")
    return PairRecords(bool(numeric) if numeric is not None else True, first, second, prompts, ids)
