"""What a loader left out: invalid records skipped in ``skip_invalid`` mode, and valid records
dropped by design (all-zero distributions, tied modes, …).

Every loader attaches a :class:`LoadReport` to its result (``userbase.meta["report"]`` or
``pairs.report``); :func:`report_of` finds it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from personalign.data.errors import DataError, DroppedRecord, SkippedRecord


@dataclass
class LoadReport:
    """Accumulates skipped (invalid) and dropped (by design) records while a loader runs.

    ``skip_invalid=False`` (strict, the default) makes :meth:`invalid` raise the error at once;
    ``True`` records it as a :class:`SkippedRecord` and lets the loader go on.
    """

    skip_invalid: bool = False
    skipped: list[SkippedRecord] = field(default_factory=list)
    dropped: list[DroppedRecord] = field(default_factory=list)

    def invalid(self, error: DataError) -> None:
        """Raise ``error`` in strict mode, else record it as skipped."""
        if not self.skip_invalid:
            raise error
        self.skipped.append(SkippedRecord(error))

    def drop(
        self,
        reason: str,
        *,
        path: Any = None,
        line: int | None = None,
        record: str | None = None,
        detail: str = "",
    ) -> None:
        """Record a valid record left out by design."""
        self.dropped.append(
            DroppedRecord(reason, str(path) if path is not None else None, line, record, detail)
        )

    def merge(self, other: LoadReport) -> None:
        self.skipped.extend(other.skipped)
        self.dropped.extend(other.dropped)

    def dropped_counts(self) -> dict[str, int]:
        """How many records were dropped, by reason."""
        return dict(Counter(d.reason for d in self.dropped))

    def skipped_counts(self) -> dict[str, int]:
        """How many records were skipped, by file."""
        return dict(Counter(s.path or "?" for s in self.skipped))

    @property
    def is_clean(self) -> bool:
        return not self.skipped

    def summary(self) -> str:
        """One paragraph for logs: counts by reason."""
        parts = [f"{len(self.skipped)} invalid record(s) skipped"]
        parts += [f"{n} dropped: {reason}" for reason, n in sorted(self.dropped_counts().items())]
        return "; ".join(parts)


def report_of(obj: Any) -> LoadReport:
    """The :class:`LoadReport` attached to a loader's result (empty if there is none)."""
    rep = getattr(obj, "report", None)
    if isinstance(rep, LoadReport):
        return rep
    meta = getattr(obj, "meta", None)
    if meta is not None and isinstance(meta.get("report"), LoadReport):
        return meta["report"]
    return LoadReport()
