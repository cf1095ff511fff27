"""Low-level readers that turn every failure into a located :class:`DataError`: strict UTF-8,
JSON (rejecting duplicated keys), JSONL, CSV, gzip (truncation detected) and Python literals.

Line-oriented readers take a :class:`~personalign.data.report.LoadReport`: a bad line raises in
strict mode and is skipped (and reported) with ``skip_invalid``.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import math
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalign.data.errors import DataError
from personalign.data.report import LoadReport

DATA_DIR_HINT = "point at a local copy with --data-dir PATH or PERSONALIGN_DATA_DIR=PATH"


@dataclass(frozen=True)
class Where:
    """A location in a file, used to build located errors."""

    path: str
    line: int | None = None
    record: str | None = None

    def error(
        self, message: str, field: str | None = None, expected: str | None = None, got: object = None
    ) -> DataError:
        return DataError(
            message,
            path=self.path,
            line=self.line,
            record=self.record,
            field=field,
            expected=expected,
            got=got,
        )


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def require_file(path: Path, what: str = "dataset file") -> Path:
    """``path`` if it is a file, else a :class:`DataError` saying how to point at a local copy."""
    if not path.is_file():
        hint = DATA_DIR_HINT if not path.parent.is_dir() else "check the file name"
        raise DataError(f"{what} not found ({hint})", path=path)
    return path


def read_bytes(path: Path, report: LoadReport | None = None) -> bytes:
    """The file's bytes, gunzipped when it ends in ``.gz``.

    A truncated or corrupt gzip raises; with ``report.skip_invalid`` the bytes decompressed before
    the damage are returned and the damage is reported as a skipped record.
    """
    require_file(path)
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    buf = io.BytesIO()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            while chunk := f.read(1 << 20):
                buf.write(chunk)
    except (EOFError, OSError, zlib.error) as e:
        err = DataError(f"truncated or corrupt gzip stream ({e})", path=path, expected="a complete gzip file")
        if report is None:
            raise err from None
        report.invalid(err)
        data = buf.getvalue()
        cut = data.rfind(b"\n")  # the last line was cut mid-way: drop it
        return data[: cut + 1] if cut >= 0 else b""
    return buf.getvalue()


def decode(data: bytes, path: Path | str, line: int | None = None) -> str:
    """Strict UTF-8 decoding (a leading BOM is dropped); the error gives the line and byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        at = line if line is not None else data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"invalid UTF-8 byte 0x{data[e.start]:02x}", path=str(path), line=at, expected="UTF-8 text"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def read_text(path: Path) -> str:
    """The whole (possibly gzipped) file as strictly decoded UTF-8 text."""
    return decode(read_bytes(path), path)


def parse_json(text: str, where: Where) -> Any:
    """``json.loads`` that rejects duplicated keys, NaN/Infinity and names the line on failure."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as e:
        raise where.error(f"duplicated key {e.key!r}", expected="unique keys in each JSON object") from None
    except json.JSONDecodeError as e:
        line = where.line if where.line is not None else e.lineno
        raise DataError(
            f"invalid JSON ({e.msg}, column {e.colno})", path=where.path, line=line, record=where.record
        ) from None
    except (RecursionError, ValueError) as e:
        raise where.error(f"invalid JSON ({e})") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def read_json(path: Path) -> Any:
    """A whole JSON file (strict UTF-8, no duplicated keys)."""
    return parse_json(read_text(path), Where(str(path)))


def iter_lines(path: Path, report: LoadReport) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of the non-blank lines, each decoded strictly; a line that is not
    UTF-8 is reported (strict mode: raised)."""
    data = read_bytes(path, report)
    for i, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield i, decode(raw, path, i)
        except DataError as e:
            report.invalid(e)


def iter_jsonl(path: Path, report: LoadReport) -> Iterator[tuple[Where, Any]]:
    """``(location, parsed object)`` per non-blank JSONL line; bad lines are reported."""
    spath = str(path)
    for i, text in iter_lines(path, report):
        where = Where(spath, i)
        try:
            yield where, parse_json(text, where)
        except DataError as e:
            report.invalid(e)


@contextmanager
def _csv_field_limit(limit: int) -> Iterator[None]:
    old = csv.field_size_limit()
    csv.field_size_limit(max(old, limit))
    try:
        yield
    finally:
        csv.field_size_limit(old)


def read_csv(
    path: Path, report: LoadReport, required: tuple[str, ...] = ()
) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and ``(first line of the row, {column: cell})`` rows of a UTF-8 CSV file.

    Missing required columns raise; a row with the wrong number of cells is reported.
    """
    text = read_text(path)
    spath = str(path)
    rows: list[tuple[int, dict[str, str]]] = []
    with _csv_field_limit(64 << 20):
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("empty CSV file", path=path, expected="a header row") from None
        except csv.Error as e:
            raise DataError(f"malformed CSV header ({e})", path=path, line=1) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(
                f"missing column(s) {', '.join(missing)}",
                path=path,
                line=1,
                expected=f"columns {', '.join(required)}",
                got=header,
            )
        if len(set(header)) != len(header):
            dup = sorted({c for c in header if header.count(c) > 1})
            raise DataError(f"duplicated column(s) {', '.join(dup)}", path=path, line=1)
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                report.invalid(DataError(f"malformed CSV ({e})", path=spath, line=start))
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue
            if len(cells) != len(header):
                report.invalid(
                    DataError(
                        "wrong number of cells",
                        path=spath,
                        line=line,
                        expected=f"{len(header)} cells",
                        got=len(cells),
                    )
                )
                continue
            rows.append((line, dict(zip(header, cells, strict=True))))
    return header, rows


_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


def literal(text: str, where: Where, field: str, expected: str) -> Any:
    """``ast.literal_eval`` of a Python-literal cell, with a located error."""
    try:
        return ast.literal_eval(text.strip())
    except _LITERAL_ERRORS:
        raise where.error("not a valid Python literal", field=field, expected=expected, got=text) from None


# -- field checks -----------------------------------------------------------------------------------


def get_field(obj: Any, key: str, where: Where, field: str | None = None) -> Any:
    """``obj[key]`` of a JSON object, or a located error if ``obj`` is no object or lacks ``key``."""
    if not isinstance(obj, dict):
        raise where.error("not a JSON object", field=field, expected="an object", got=type(obj).__name__)
    if key not in obj:
        raise where.error("missing", field=f"{field}.{key}" if field else key)
    return obj[key]


def as_str(value: Any, where: Where, field: str, *, nonempty: bool = True) -> str:
    if not isinstance(value, str) or (nonempty and not value.strip()):
        raise where.error(
            "bad value", field=field, expected="a non-empty string" if nonempty else "a string", got=value
        )
    return value


def as_int(value: Any, where: Where, field: str, lo: int | None = None, hi: int | None = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if ok and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        ok = False
    if not ok:
        rng = f" in {lo}..{hi}" if lo is not None and hi is not None else ""
        raise where.error("bad value", field=field, expected=f"an integer{rng}", got=value)
    return value


def as_number(value: Any, where: Where, field: str, *, nonneg: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (nonneg and value < 0)
    ):
        raise where.error(
            "bad value", field=field, expected="a finite number" + (" >= 0" if nonneg else ""), got=value
        )
    return float(value)


def as_list(value: Any, where: Where, field: str, *, nonempty: bool = True) -> list[Any]:
    if not isinstance(value, list | tuple) or (nonempty and not value):
        raise where.error(
            "bad value", field=field, expected="a non-empty list" if nonempty else "a list", got=value
        )
    return list(value)


def as_dict(value: Any, where: Where, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise where.error("bad value", field=field, expected="an object", got=value)
    return value
