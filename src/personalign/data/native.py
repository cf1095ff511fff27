"""The project's own, versioned format for a team's user base (or preference pairs).

A folder holding ``manifest.json`` plus JSON Lines files (schemas in
``personalign/data/schema/*.schema.json``, documented in ``docs/data-format.md``)::

    mybase/
      manifest.json     {"format": "personalign-userbase", "format_version": 1, "kind": "opinions", ...}
      questions.jsonl   {"id": "Q1", "text": "...", "options": ["Yes", "No"]}
      users.jsonl       {"id": "u1", "profile": {"attributes": {"Age": "30-49"}}, "opinions": [...]}

or, with ``"kind": "preferences"``, a ``pairs.jsonl`` of ``{"prompt", "chosen", "rejected", "metadata"}``.
Every loader's result can be written with :func:`save_userbase` / :func:`save_preference_pairs`
and read back with :func:`load_userbase` (which returns either kind).
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from personalign.data.errors import DataError
from personalign.data.options import make_question, parse_distribution
from personalign.data.preferences import PreferenceData, pair_id
from personalign.data.readers import (
    Where,
    as_dict,
    as_int,
    as_list,
    as_number,
    as_str,
    get_field,
    iter_jsonl,
    read_json,
)
from personalign.data.report import LoadReport
from personalign.data.types import Opinion, PreferencePair, Profile, Question, User, UserBase

FORMAT_USERBASE = "personalign-userbase"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SCHEMA_DIR = Path(__file__).parent / "schema"


def _version() -> str:
    try:
        return importlib.metadata.version("personalign")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def json_safe(value: Any) -> Any:
    """``value`` with mappings as dicts and tuples as lists; other non-JSON values as strings."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _meta_for_manifest(meta: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in meta.items():
        if isinstance(v, LoadReport):
            out["load_report"] = {"skipped": len(v.skipped), "dropped": v.dropped_counts()}
        else:
            out[k] = json_safe(v)
    return out


def _write_jsonl(path: Path, records: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, allow_nan=False))
            f.write("\n")
    tmp.replace(path)


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    tmp.replace(folder / MANIFEST)


def question_record(q: Question) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": q.id, "text": q.text, "options": list(q.options)}
    if q.option_values is not None:
        rec["option_values"] = json_safe(q.option_values)
    if q.ordinals is not None:
        rec["ordinals"] = json_safe(q.ordinals)
    if q.meta:
        rec["meta"] = json_safe(q.meta)
    return rec


def user_record(u: User, questions: Mapping[str, Question]) -> dict[str, Any]:
    profile: dict[str, Any] = {"attributes": dict(u.profile.attributes)}
    if u.profile.text is not None:
        profile["text"] = u.profile.text
    ops = []
    for o in u.opinions:
        rec: dict[str, Any] = {
            "question_id": o.question_id,
            "choice": o.choice,
            "answer": questions[o.question_id].options[o.choice],
        }
        if o.distribution is not None:
            rec["distribution"] = list(o.distribution)
        ops.append(rec)
    rec = {"id": u.id, "profile": profile, "opinions": ops}
    if u.meta:
        rec["meta"] = json_safe(u.meta)
    return rec


def save_userbase(userbase: UserBase, folder: str | Path) -> Path:
    """Write ``userbase`` in the project's format (version :data:`FORMAT_VERSION`) to ``folder``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _write_jsonl(out / "questions.jsonl", (question_record(q) for q in userbase.questions.values()))
    _write_jsonl(out / "users.jsonl", (user_record(u, userbase.questions) for u in userbase.users))
    manifest = {
        "format": FORMAT_USERBASE,
        "format_version": FORMAT_VERSION,
        "kind": "opinions",
        "name": userbase.name,
        "files": {"questions": "questions.jsonl", "users": "users.jsonl"},
        "counts": {
            "questions": len(userbase.questions),
            "users": len(userbase.users),
            "opinions": sum(len(u.opinions) for u in userbase.users),
        },
        "meta": _meta_for_manifest(userbase.meta),
        "created_by": f"personalign {_version()}",
    }
    _write_manifest(out, manifest)
    return out


def save_preference_pairs(
    pairs: PreferenceData | list[PreferencePair], folder: str | Path, name: str | None = None
) -> Path:
    """Write preference pairs in the project's format (``kind: "preferences"``)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    records = [
        {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "metadata": json_safe(p.metadata)}
        for p in pairs
    ]
    _write_jsonl(out / "pairs.jsonl", records)
    meta = _meta_for_manifest(getattr(pairs, "meta", {}) or {})
    if isinstance(pairs, PreferenceData):
        rep = pairs.report
        meta["load_report"] = {"skipped": len(rep.skipped), "dropped": rep.dropped_counts()}
    manifest = {
        "format": FORMAT_USERBASE,
        "format_version": FORMAT_VERSION,
        "kind": "preferences",
        "name": name or getattr(pairs, "name", out.name),
        "files": {"pairs": "pairs.jsonl"},
        "counts": {"pairs": len(records)},
        "meta": meta,
        "created_by": f"personalign {_version()}",
    }
    _write_manifest(out, manifest)
    return out


def read_manifest(folder: Path) -> dict[str, Any]:
    """The validated manifest of a folder in the project's format."""
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(
            "not a personalign data folder (no manifest.json)",
            path=folder,
            expected="a folder written by `personalign data convert` or save_userbase()",
        )
    where = Where(str(path))
    m = as_dict(read_json(path), where, "(top level)")
    if get_field(m, "format", where) != FORMAT_USERBASE:
        raise where.error("unknown format", field="format", expected=repr(FORMAT_USERBASE), got=m["format"])
    version = as_int(get_field(m, "format_version", where), where, "format_version", 1)
    if version > FORMAT_VERSION:
        raise where.error(
            "written by a newer personalign",
            field="format_version",
            expected=f"<= {FORMAT_VERSION} (upgrade personalign)",
            got=version,
        )
    kind = get_field(m, "kind", where)
    if kind not in ("opinions", "preferences"):
        raise where.error("unknown kind", field="kind", expected="'opinions' or 'preferences'", got=kind)
    files = as_dict(m.get("files", {}), where, "files")
    for key, value in files.items():
        name = as_str(value, where, f"files.{key}")
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise where.error("must be a file name inside the folder", field=f"files.{key}", got=name)
    return m


def _aligned_list(obj: Any, key: str, n: int, where: Where) -> list[Any] | None:
    """The optional list ``obj[key]``, which must have one entry per option."""
    value = obj.get(key)
    if value is None:
        return None
    value = as_list(value, where, key)
    if len(value) != n:
        raise where.error("length differs from options", field=key, expected=f"{n} values", got=len(value))
    return value


def _parse_question(obj: Any, where: Where) -> Question:
    qid = as_str(get_field(obj, "id", where), where, "id")
    text = as_str(get_field(obj, "text", where), where, "text")
    options = as_list(get_field(obj, "options", where), where, "options")
    for i, o in enumerate(options):
        as_str(o, where, f"options[{i}]")
    values = _aligned_list(obj, "option_values", len(options), where)
    ordinals = _aligned_list(obj, "ordinals", len(options), where)
    if ordinals is not None:
        ordinals = [
            None if v is None else as_number(v, where, f"ordinals[{i}]") for i, v in enumerate(ordinals)
        ]
    meta = as_dict(obj.get("meta", {}), where, "meta")
    q = make_question(qid, text, options, where, ordinals=ordinals, meta=meta)
    if values is not None:
        q = Question(q.id, q.text, q.options, tuple(values), q.ordinals, q.meta)
    return q


def _parse_user(obj: Any, where: Where, questions: Mapping[str, Question], report: LoadReport) -> User:
    uid = as_str(get_field(obj, "id", where), where, "id")
    prof = as_dict(obj.get("profile", {}), where, "profile")
    attrs = as_dict(prof.get("attributes", {}), where, "profile.attributes")
    attributes = {}
    for k, v in attrs.items():
        if v is not None:
            attributes[k] = as_str(v, where, f"profile.attributes[{k!r}]")
    text = prof.get("text")
    if text is not None:
        text = as_str(text, where, "profile.text", nonempty=False)
    opinions = []
    seen: set[str] = set()
    for i, op in enumerate(as_list(get_field(obj, "opinions", where), where, "opinions", nonempty=False)):
        field = f"opinions[{i}]"
        try:
            qid = as_str(get_field(op, "question_id", where, field), where, f"{field}.question_id")
            if qid not in questions:
                raise where.error(
                    "unknown question id",
                    field=f"{field}.question_id",
                    expected="an id in questions.jsonl",
                    got=qid,
                )
            if qid in seen:
                raise where.error(
                    "duplicated question id in this user's opinions", field=f"{field}.question_id", got=qid
                )
            q = questions[qid]
            choice = as_int(
                get_field(op, "choice", where, field), where, f"{field}.choice", 0, len(q.options) - 1
            )
            answer = op.get("answer")
            if answer is not None and answer != q.options[choice]:
                raise where.error(
                    "answer text does not match choice",
                    field=f"{field}.answer",
                    expected=repr(q.options[choice]),
                    got=answer,
                )
            dist = op.get("distribution")
            if dist is not None:
                dist = parse_distribution(dist, len(q.options), where, f"{field}.distribution")
        except DataError as e:
            report.invalid(e)
            continue
        seen.add(qid)
        opinions.append(Opinion(qid, choice, dist))
    meta = as_dict(obj.get("meta", {}), where, "meta")
    return User(uid, Profile(MappingProxyType(attributes), text), tuple(opinions), MappingProxyType(meta))


def load_userbase(folder: str | Path, *, skip_invalid: bool = False) -> UserBase | PreferenceData:
    """Read a folder in the project's format (either kind), validating every record."""
    root = Path(folder)
    manifest = read_manifest(root)
    report = LoadReport(skip_invalid)
    files = manifest.get("files", {})
    name = str(manifest.get("name") or root.name)
    meta_in = manifest.get("meta") if isinstance(manifest.get("meta"), dict) else {}
    if manifest["kind"] == "preferences":
        pairs = []
        ids: set[str] = set()
        for where, obj in iter_jsonl(root / files.get("pairs", "pairs.jsonl"), report):
            try:
                prompt = as_str(get_field(obj, "prompt", where), where, "prompt", nonempty=False)
                chosen = as_str(get_field(obj, "chosen", where), where, "chosen", nonempty=False)
                rejected = as_str(get_field(obj, "rejected", where), where, "rejected", nonempty=False)
                meta = dict(as_dict(obj.get("metadata", {}), where, "metadata"))
                pid = meta.setdefault(
                    "pair_id", pair_id(str(meta.get("subset", "")), prompt, chosen, rejected)
                )
                if pid in ids:
                    raise where.error("duplicated pair id", field="metadata.pair_id", got=pid)
            except DataError as e:
                report.invalid(e)
                continue
            ids.add(pid)
            pairs.append(PreferencePair(prompt, chosen, rejected, MappingProxyType(meta)))
        return PreferenceData(name, tuple(pairs), report, MappingProxyType({**meta_in, "source": str(root)}))
    questions: dict[str, Question] = {}
    qlines: dict[str, int] = {}
    for where, obj in iter_jsonl(root / files.get("questions", "questions.jsonl"), report):
        try:
            q = _parse_question(obj, where)
            if q.id in qlines:
                raise where.error(
                    f"duplicated question id (first on line {qlines[q.id]})", field="id", got=q.id
                )
        except DataError as e:
            report.invalid(e)
            continue
        qlines[q.id] = where.line or 0
        questions[q.id] = q
    users = []
    ulines: dict[str, int] = {}
    for where, obj in iter_jsonl(root / files.get("users", "users.jsonl"), report):
        try:
            u = _parse_user(obj, where, questions, report)
            if u.id in ulines:
                raise where.error(f"duplicated user id (first on line {ulines[u.id]})", field="id", got=u.id)
        except DataError as e:
            report.invalid(e)
            continue
        ulines[u.id] = where.line or 0
        users.append(u)
    meta = {**meta_in, "report": report, "source": str(root)}
    return UserBase(name, MappingProxyType(questions), tuple(users), MappingProxyType(meta))
