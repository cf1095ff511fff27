"""The dataset registry (:data:`DATASETS`) and the entry points :func:`load_dataset` and
:func:`load_preference_pairs`.

Registered names (``personalign data list``):

=====================  ============  ===========================================================
name                   kind          source (under the data folder)
=====================  ============  ===========================================================
opinionqa-users        opinions      ``opinionqa/hwang2023_users``
opinionqa-groups       opinions      ``opinionqa/group_counts`` + ``opinionqa/questions``
globalopinionqa        opinions      ``globalopinionqa/{questions,country_distributions}.jsonl``
globalopinionqa-csv    opinions      ``globalopinionqa/global_opinions_format.csv``
hh-rlhf                preferences   ``hh_rlhf/{helpful,harmless}-base.test.jsonl.gz``
ultrafeedback          preferences   ``ultrafeedback_binarized_sample/*.jsonl``
userbase               either        a folder in the project's format (``path=...``)
csv                    opinions      a long CSV table (``path=...``)
=====================  ============  ===========================================================

``load_dataset`` also accepts a path: a folder with ``manifest.json`` (project format) or a
``.csv`` file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalign.data.datadir import resolve_data_dir
from personalign.data.errors import DataError
from personalign.data.preferences import PreferenceData
from personalign.data.types import UserBase
from personalign.registry import Registry

Loaded = UserBase | PreferenceData


@dataclass(frozen=True)
class DatasetLoader:
    """A registered dataset: its kind (``opinions``/``preferences``/``either``), what it reads,
    and the loader ``(data_dir, *, skip_invalid, **options) -> UserBase | PreferenceData``."""

    name: str
    kind: str
    source: str
    load: Callable[..., Loaded]
    description: str = ""
    options: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    """Folders (relative to the data folder) whose files the loader reads: the load cache's key."""


DATASETS: Registry[DatasetLoader] = Registry("dataset")


def _lazy(module: str, attr: str) -> Callable[..., Loaded]:
    def call(*args: Any, **kwargs: Any) -> Loaded:
        import importlib

        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__name__ = attr
    return call


def _path_loader(kind: str) -> Callable[..., Loaded]:
    def load(
        data_dir: Any = None, *, skip_invalid: bool = False, path: str | Path | None = None, **opts: Any
    ) -> Loaded:
        if path is None:
            raise ValueError(
                f"the {kind!r} dataset needs path=... (a {'CSV file' if kind == 'csv' else 'folder'})"
            )
        return _load_path(Path(path), skip_invalid=skip_invalid, **opts)

    return load


def _register(
    name: str,
    kind: str,
    source: str,
    load: Callable[..., Loaded],
    description: str,
    options: tuple[str, ...] = (),
    roots: tuple[str, ...] = (),
) -> None:
    DATASETS.register(
        name, DatasetLoader(name, kind, source, load, description, options, roots), help=description
    )


_register(
    "opinionqa-users",
    "opinions",
    "opinionqa/hwang2023_users",
    _lazy("personalign.data.opinionqa", "load_opinionqa_users"),
    "420 real Pew respondents (Hwang et al. 2023), profiles + 31-48 answers each",
    ("user_set", "seed"),
    ("opinionqa/hwang2023_users",),
)
_register(
    "opinionqa-groups",
    "opinions",
    "opinionqa/group_counts + opinionqa/questions",
    _lazy("personalign.data.opinionqa", "load_opinionqa_groups"),
    "OpinionQA demographic groups as users (modal answer, distribution kept)",
    ("tie_policy", "attributes"),
    ("opinionqa/group_counts", "opinionqa/questions"),
)
_register(
    "globalopinionqa",
    "opinions",
    "globalopinionqa/questions.jsonl + country_distributions.jsonl",
    _lazy("personalign.data.globalopinionqa", "load_globalopinionqa"),
    "GlobalOpinionQA countries as users, from the JSONL pair",
    ("layout", "min_questions", "tie_policy"),
    ("globalopinionqa",),
)
_register(
    "globalopinionqa-csv",
    "opinions",
    "globalopinionqa/global_opinions_format.csv",
    _lazy("personalign.data.globalopinionqa", "load_globalopinionqa_csv"),
    "GlobalOpinionQA countries as users, from the original global_opinions.csv layout",
    ("min_questions", "tie_policy"),
    ("globalopinionqa",),
)
_register(
    "hh-rlhf",
    "preferences",
    "hh_rlhf/{helpful,harmless}-base.test.jsonl.gz",
    _lazy("personalign.data.preferences", "load_hh_rlhf"),
    "Anthropic HH-RLHF test pairs (helpful, harmless), prompt/response split",
    ("subsets",),
    ("hh_rlhf",),
)
_register(
    "ultrafeedback",
    "preferences",
    "ultrafeedback_binarized_sample/{train,eval}_clean.jsonl",
    _lazy("personalign.data.preferences", "load_ultrafeedback"),
    "UltraFeedback binarized pairs with overall GPT-4 scores (ties flagged)",
    ("files",),
    ("ultrafeedback_binarized_sample",),
)
_register(
    "userbase",
    "either",
    "a folder in the project's format",
    _path_loader("userbase"),
    "a user base (or preference pairs) in the project's own versioned format",
    ("path",),
)
_register(
    "csv",
    "opinions",
    "a long CSV table, one row per answer",
    _path_loader("csv"),
    "a user base imported from CSV (user_id, question_id, question, options, answer, profile:*)",
    ("path",),
)


def _load_path(path: Path, *, skip_invalid: bool = False, **options: Any) -> Loaded:
    if path.is_dir():
        from personalign.data.native import load_userbase

        return load_userbase(path, skip_invalid=skip_invalid, **options)
    if path.is_file() and path.suffix.lower() == ".csv":
        from personalign.data.csv_import import load_userbase_csv

        return load_userbase_csv(path, skip_invalid=skip_invalid, **options)
    if path.is_file():
        raise DataError(
            "unsupported file type", path=path, expected="a .csv table or a folder in the project's format"
        )
    raise DataError("no such file or folder", path=path)


def _looks_like_path(name: str) -> bool:
    return any(sep in name for sep in ("/", "\\")) or name.endswith(".csv") or Path(name).exists()


_CACHE: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], Loaded]] = OrderedDict()
_CACHE_SIZE = 8


def _fingerprint(root: Path, rels: tuple[str, ...]) -> tuple[Any, ...] | None:
    """(path, size, mtime) of every file the loader may read; ``None`` if not cacheable."""
    out: list[Any] = []
    for rel in rels:
        base = root / rel
        if not base.exists():
            return None
        for p in sorted(base.rglob("*")) if base.is_dir() else [base]:
            if p.is_file():
                st = p.stat()
                out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(_freeze(v) for v in value)
    return value


def clear_cache() -> None:
    """Forget the results :func:`load_dataset` keeps in memory."""
    _CACHE.clear()


def load_dataset(
    name_or_path: str | Path,
    data_dir: str | Path | None = None,
    skip_invalid: bool = False,
    *,
    cache: bool = True,
    **options: Any,
) -> Loaded:
    """Load a registered dataset by name, or a project-format folder / CSV file by path.

    Opinion datasets give a :class:`UserBase`, preference datasets a :class:`PreferenceData`;
    either way the :class:`~personalign.data.report.LoadReport` is attached
    (:func:`~personalign.data.report.report_of`). ``skip_invalid=False`` (default) raises a
    :class:`DataError` at the first bad record.

    Registered datasets are kept in a small in-memory cache (``cache=True``), keyed by name,
    data folder, options and the size and modification time of every file they read, so repeated
    loads (an evaluation harness) are free and a changed file is re-read. The results are frozen;
    do not mutate their load report.
    """
    if isinstance(name_or_path, Path) or (name_or_path not in DATASETS and _looks_like_path(name_or_path)):
        return _load_path(Path(name_or_path), skip_invalid=skip_invalid, **options)
    loader = DATASETS.get(str(name_or_path))
    unknown = sorted(set(options) - set(loader.options))
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for dataset {loader.name!r}; "
            f"available: {', '.join(loader.options) or '(none)'}"
        )
    if not cache or not loader.roots:
        return loader.load(data_dir, skip_invalid=skip_invalid, **options)
    root = resolve_data_dir(data_dir)
    key = (loader.name, str(root.resolve()), skip_invalid, _freeze(options))
    stamp = _fingerprint(root, loader.roots)
    hit = _CACHE.get(key)
    if hit is not None and stamp is not None and hit[0] == stamp:
        _CACHE.move_to_end(key)
        return hit[1]
    out = loader.load(root, skip_invalid=skip_invalid, **options)
    if stamp is not None:
        _CACHE[key] = (stamp, out)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def load_userbase_any(
    name_or_path: str | Path, data_dir: str | Path | None = None, skip_invalid: bool = False, **options: Any
) -> UserBase:
    """:func:`load_dataset`, requiring an opinion dataset."""
    out = load_dataset(name_or_path, data_dir, skip_invalid, **options)
    if not isinstance(out, UserBase):
        raise DataError(
            f"{name_or_path} holds preference pairs, not users with opinions", expected="an opinion dataset"
        )
    return out


def load_preference_pairs(
    name: str | Path,
    data_dir: str | Path | None = None,
    subsets: Sequence[str] | None = None,
    skip_invalid: bool = False,
    **options: Any,
) -> PreferenceData:
    """Preference pairs of a registered preference dataset (``hh-rlhf``, ``ultrafeedback``) or of a
    project-format folder. ``subsets`` restricts HH-RLHF to ``helpful`` and/or ``harmless``."""
    by_name = isinstance(name, str) and name in DATASETS and DATASETS.get(name).kind == "preferences"
    if subsets is not None and by_name:
        options["subsets"] = tuple(subsets)
    out = load_dataset(name, data_dir, skip_invalid, **options)
    if not isinstance(out, PreferenceData):
        raise DataError(
            f"{name} holds users with opinions, not preference pairs", expected="a preference dataset"
        )
    if subsets is not None and not by_name:
        keep = set(subsets)
        out = PreferenceData(
            out.name, tuple(p for p in out if p.metadata.get("subset") in keep), out.report, out.meta
        )
    return out
