"""Preference-pair loaders: Anthropic HH-RLHF (gzip JSONL dialogues) and UltraFeedback binarized.

Every pair's ``metadata`` holds ``subset`` (``"helpful"``, ``"harmless"`` or ``"uf"``), ``pair_id``
(stable: a hash of subset, prompt and both responses, independent of file order), ``split``
(``train``/``val``/``test`` by :func:`prompt_split`), ``source`` (file) and ``line``; UltraFeedback
pairs add ``score_chosen``, ``score_rejected``, ``tie`` and ``source_index``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, overload

from personalign.data.datadir import dataset_path
from personalign.data.errors import DataError
from personalign.data.readers import Where, as_dict, as_int, as_number, as_str, get_field, iter_jsonl
from personalign.data.report import LoadReport
from personalign.data.types import PreferencePair, PreferenceUser

ASSISTANT = "\n\nAssistant:"
HH_DIR = "hh_rlhf"
HH_SUBSETS = ("helpful", "harmless")
UF_DIR = "ultrafeedback_binarized_sample"
UF_FILES = ("train_clean", "eval_clean")


@dataclass(frozen=True)
class PreferenceData(Sequence[PreferencePair]):
    """A loaded list of preference pairs (a read-only sequence) with its load report."""

    name: str
    pairs: tuple[PreferencePair, ...]
    report: LoadReport = field(default_factory=LoadReport, compare=False)
    meta: Any = field(default_factory=lambda: MappingProxyType({}), compare=False)

    @overload
    def __getitem__(self, i: int) -> PreferencePair: ...
    @overload
    def __getitem__(self, i: slice) -> tuple[PreferencePair, ...]: ...
    def __getitem__(self, i: int | slice) -> PreferencePair | tuple[PreferencePair, ...]:
        return self.pairs[i]

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[PreferencePair]:
        return iter(self.pairs)

    def by_subset(self) -> tuple[PreferenceUser, ...]:
        """The pairs grouped by ``metadata["subset"]`` as :class:`PreferenceUser` s (id = subset)."""
        groups: dict[str, list[PreferencePair]] = {}
        for p in self.pairs:
            groups.setdefault(str(p.metadata.get("subset", "")), []).append(p)
        return tuple(PreferenceUser(k, tuple(v)) for k, v in groups.items())

    def subsets(self) -> dict[str, int]:
        """Pair counts by ``metadata["subset"]``."""
        out: dict[str, int] = {}
        for p in self.pairs:
            s = str(p.metadata.get("subset", ""))
            out[s] = out.get(s, 0) + 1
        return out


def prompt_split(prompt: str) -> str:
    """``train`` / ``val`` / ``test`` by ``int(sha256(prompt utf-8).hexdigest(), 16) % 10``:
    0–7 train, 8 val, 9 test. Depends on the prompt only, never on file order."""
    bucket = int(hashlib.sha256(prompt.encode("utf-8")).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def pair_id(subset: str, prompt: str, chosen: str, rejected: str) -> str:
    """A stable 16-hex-digit id for a pair."""
    h = hashlib.sha256()
    for part in (subset, prompt, chosen, rejected):
        h.update(part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:16]


def split_dialogue(text: str) -> tuple[str, str] | None:
    """``(prompt, response)``: the prompt is everything up to and including the last
    ``"\\n\\nAssistant:"``, the response the stripped remainder. ``None`` without that marker."""
    i = text.rfind(ASSISTANT)
    if i < 0:
        return None
    cut = i + len(ASSISTANT)
    return text[:cut], text[cut:].strip()


class _PairCollector:
    def __init__(self, report: LoadReport) -> None:
        self.report = report
        self.pairs: list[PreferencePair] = []
        self.ids: dict[str, str] = {}

    def add(
        self, where: Where, subset: str, prompt: str, chosen: str, rejected: str, extra: dict[str, Any]
    ) -> None:
        if not chosen.strip() or not rejected.strip():
            self.report.drop("empty response", path=where.path, line=where.line)
            return
        if chosen == rejected:
            self.report.drop("identical responses", path=where.path, line=where.line)
            return
        pid = pair_id(subset, prompt, chosen, rejected)
        here = f"{Path(where.path).name}:{where.line}"
        if pid in self.ids:
            self.report.drop(
                "duplicated pair", path=where.path, line=where.line, detail=f"same as {self.ids[pid]}"
            )
            return
        self.ids[pid] = here
        meta = {
            "subset": subset,
            "pair_id": pid,
            "split": prompt_split(prompt),
            "source": Path(where.path).name,
            "line": where.line,
            **extra,
        }
        self.pairs.append(PreferencePair(prompt, chosen, rejected, MappingProxyType(meta)))


def load_hh_rlhf(
    data_dir: str | Path | None = None, *, skip_invalid: bool = False, subsets: Sequence[str] = HH_SUBSETS
) -> PreferenceData:
    """HH-RLHF ``{subset}-base.test.jsonl.gz`` pairs. Pairs whose two dialogues have different
    prompts, an empty response, or identical responses are dropped (and reported)."""
    unknown = [s for s in subsets if s not in HH_SUBSETS]
    if unknown:
        raise ValueError(f"unknown hh-rlhf subset {unknown[0]!r}; available: {', '.join(HH_SUBSETS)}")
    folder = dataset_path(data_dir, HH_DIR)
    report = LoadReport(skip_invalid)
    out = _PairCollector(report)
    for subset in subsets:
        path = folder / f"{subset}-base.test.jsonl.gz"
        for where, obj in iter_jsonl(path, report):
            try:
                chosen = as_str(get_field(obj, "chosen", where), where, "chosen")
                rejected = as_str(get_field(obj, "rejected", where), where, "rejected")
                parts = []
                for name, text in (("chosen", chosen), ("rejected", rejected)):
                    split = split_dialogue(text)
                    if split is None:
                        raise where.error(
                            "no assistant turn",
                            field=name,
                            expected="a dialogue containing '\\n\\nAssistant:'",
                        )
                    parts.append(split)
            except DataError as e:
                report.invalid(e)
                continue
            (p_c, r_c), (p_r, r_r) = parts
            if p_c != p_r:
                report.drop("unequal prompts", path=where.path, line=where.line)
                continue
            out.add(where, subset, p_c, r_c, r_r, {})
    return PreferenceData(
        "hh-rlhf", tuple(out.pairs), report, MappingProxyType({"subsets": tuple(subsets), "source": HH_DIR})
    )


def load_ultrafeedback(
    data_dir: str | Path | None = None,
    *,
    skip_invalid: bool = False,
    subsets: Sequence[str] = ("uf",),
    files: Sequence[str] = UF_FILES,
) -> PreferenceData:
    """UltraFeedback binarized pairs (``prompt``, ``chosen``, ``rejected``, ``metadata.score_*``).
    Ties (equal scores) are kept and flagged ``metadata["tie"]``; pairs with an empty or identical
    response are dropped (and reported)."""
    if tuple(subsets) != ("uf",):
        raise ValueError("ultrafeedback has one subset: 'uf'")
    folder = dataset_path(data_dir, UF_DIR)
    report = LoadReport(skip_invalid)
    out = _PairCollector(report)
    for name in files:
        for where, obj in iter_jsonl(folder / f"{name}.jsonl", report):
            try:
                prompt = as_str(get_field(obj, "prompt", where), where, "prompt")
                chosen = as_str(get_field(obj, "chosen", where), where, "chosen", nonempty=False)
                rejected = as_str(get_field(obj, "rejected", where), where, "rejected", nonempty=False)
                meta = as_dict(get_field(obj, "metadata", where), where, "metadata")
                sc = as_number(
                    get_field(meta, "score_chosen", where, "metadata"), where, "metadata.score_chosen"
                )
                sr = as_number(
                    get_field(meta, "score_rejected", where, "metadata"), where, "metadata.score_rejected"
                )
                extra: dict[str, Any] = {
                    "score_chosen": sc,
                    "score_rejected": sr,
                    "tie": sc == sr,
                    "uf_file": name,
                }
                if "source_index" in obj:
                    extra["source_index"] = as_int(obj["source_index"], where, "source_index", 0)
            except DataError as e:
                report.invalid(e)
                continue
            out.add(where, "uf", prompt, chosen, rejected, extra)
    return PreferenceData(
        "ultrafeedback", tuple(out.pairs), report, MappingProxyType({"files": tuple(files), "source": UF_DIR})
    )
