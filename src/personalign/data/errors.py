"""The data layer's error type: every problem names the file, the line (or record), the field and
what was expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DataError(ValueError):
    """Bad input data, located as precisely as the format allows.

    ``str(err)`` reads like ``users.jsonl:17: field 'answers[3].answer_index': expected an integer
    in 0..3, got 7``. ``record`` names the record when the format has no lines (a key of a JSON
    object, a CSV row's id), e.g. ``POLPARTY_data.json [SAFECRIME_W26]: …``.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
        got: object = None,
        record: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.record = record
        self.field = field
        self.expected = expected
        self.got = got
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line is not None else "")
        if self.record is not None:
            where = f"{where} [{self.record}]" if where else f"[{self.record}]"
        parts = [where] if where else []
        detail = self.message
        if self.field:
            detail = f"field {self.field!r}: {detail}"
        if self.expected:
            detail += f"; expected {self.expected}"
        if self.got is not None:
            got = repr(self.got)
            detail += f", got {got[:120] + '…' if len(got) > 120 else got}"
        parts.append(detail)
        return ": ".join(parts)


@dataclass(frozen=True)
class SkippedRecord:
    """A record dropped in ``skip_invalid`` mode, with the error that caused it."""

    error: DataError

    def __str__(self) -> str:
        return str(self.error)

    @property
    def path(self) -> str | None:
        return self.error.path

    @property
    def line(self) -> int | None:
        return self.error.line

    @property
    def reason(self) -> str:
        """The error without its location."""
        return self.error.message if not self.error.field else f"{self.error.field}: {self.error.message}"


@dataclass(frozen=True)
class DroppedRecord:
    """A valid record a loader leaves out by design (an all-zero distribution, a tied mode, a country
    with too few questions, a degenerate preference pair), with where it was and why."""

    reason: str
    path: str | None = None
    line: int | None = None
    record: str | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = (self.path or "") + (f":{self.line}" if self.line is not None else "")
        if self.record is not None:
            where = f"{where} [{self.record}]" if where else f"[{self.record}]"
        text = f"{where}: {self.reason}" if where else self.reason
        return f"{text} ({self.detail})" if self.detail else text


class InsufficientDataError(DataError):
    """A user has too few opinions for the requested split."""
