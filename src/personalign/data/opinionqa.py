"""OpinionQA loaders in their original layouts.

* ``opinionqa-users``: the 420 real Pew respondents of Hwang et al. (2023)
  (``opinionqa/hwang2023_users/{users.jsonl,questions.json}``).
* ``opinionqa-groups``: demographic group as user (``opinionqa/group_counts/<WAVE>/<ATTR>_data.json``
  with the question bank ``opinionqa/questions/<WAVE>/info.csv``): a group's modal answer is its
  opinion, the full answer distribution is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from personalign.data.datadir import dataset_path
from personalign.data.errors import DataError
from personalign.data.options import make_question, modal_index, normalized
from personalign.data.readers import (
    Where,
    as_dict,
    as_int,
    as_list,
    as_number,
    as_str,
    get_field,
    iter_jsonl,
    literal,
    read_csv,
    read_json,
)
from personalign.data.report import LoadReport
from personalign.data.split import select_users
from personalign.data.types import Opinion, Profile, Question, User, UserBase

USERS_DIR = ("opinionqa", "hwang2023_users")
GROUP_COUNTS_DIR = ("opinionqa", "group_counts")
QUESTIONS_DIR = ("opinionqa", "questions")

GROUP_ATTRIBUTE_LABELS: dict[str, str] = {
    "AGE": "Age",
    "CREGION": "Region",
    "EDUCATION": "Education",
    "INCOME": "Income",
    "POLIDEOLOGY": "Political ideology",
    "POLPARTY": "Political party",
    "RACE": "Race",
    "SEX": "Gender",
}
"""Profile labels of the group attributes (the names ``opinionqa-users`` profiles use)."""

EXCLUDED_GROUPS = frozenset({"Refused", "nan"})
TIE_POLICIES = ("drop", "first")
_RESERVED_KEYS = frozenset({"MC_options", "question_text"})


# -- opinionqa-users --------------------------------------------------------------------------------


def _read_hwang_questions(path: Path) -> dict[str, Question]:
    raw = read_json(path)
    where = Where(str(path))
    raw = as_dict(raw, where, "(top level)")
    questions: dict[str, Question] = {}
    for qid, entry in raw.items():
        w = Where(str(path), record=qid)
        text = as_str(get_field(entry, "question", w), w, "question")
        questions[qid] = make_question(qid, text, get_field(entry, "options", w), w)
    if not questions:
        raise DataError("no questions", path=path, expected="at least one question")
    return questions


def _parse_hwang_user(obj: Any, where: Where, questions: dict[str, Question], report: LoadReport) -> User:
    uid_raw = get_field(obj, "user_id", where)
    if isinstance(uid_raw, bool) or not isinstance(uid_raw, int | str) or not str(uid_raw).strip():
        raise where.error(
            "bad user id", field="user_id", expected="an integer or a non-empty string", got=uid_raw
        )
    uid = str(uid_raw)
    profile_raw = as_dict(obj.get("profile", {}), where, "profile")
    attributes: dict[str, str] = {}
    for key, value in profile_raw.items():
        if value is None:  # unknown stays unknown
            continue
        attributes[key] = as_str(value, where, f"profile[{key!r}]")
    answers = as_list(get_field(obj, "answers", where), where, "answers")
    n_answers = obj.get("n_answers")
    if n_answers is not None and as_int(n_answers, where, "n_answers", 0) != len(answers):
        raise where.error(
            "does not match the answers",
            field="n_answers",
            expected=f"{len(answers)} (the length of 'answers')",
            got=n_answers,
        )
    opinions: list[Opinion] = []
    seen: set[str] = set()
    test_sets: dict[str, tuple[str, ...]] = {}
    for i, ans in enumerate(answers):
        field = f"answers[{i}]"
        try:
            qid = as_str(get_field(ans, "qid", where, field), where, f"{field}.qid")
            if qid not in questions:
                raise where.error(
                    "unknown question id", field=f"{field}.qid", expected="a key of questions.json", got=qid
                )
            if qid in seen:
                raise where.error(
                    "duplicated question id in this user's answers", field=f"{field}.qid", got=qid
                )
            q = questions[qid]
            idx = as_int(
                get_field(ans, "answer_index", where, field),
                where,
                f"{field}.answer_index",
                0,
                len(q.options) - 1,
            )
            text = ans.get("answer")
            if text is not None and text != q.options[idx]:
                raise where.error(
                    "answer text does not match answer_index",
                    field=f"{field}.answer",
                    expected=repr(q.options[idx]),
                    got=text,
                )
        except DataError as e:
            report.invalid(e)
            continue
        seen.add(qid)
        opinions.append(Opinion(qid, idx))
        if isinstance(ans.get("in_test_sets"), list):
            test_sets[qid] = tuple(str(s) for s in ans["in_test_sets"])
    meta = {k: obj[k] for k in ("survey", "topic", "profile_complete") if k in obj}
    meta["in_test_sets"] = MappingProxyType(test_sets)
    return User(uid, Profile(MappingProxyType(attributes)), tuple(opinions), MappingProxyType(meta))


def load_opinionqa_users(
    data_dir: str | Path | None = None, *, skip_invalid: bool = False, user_set: str = "all", seed: int = 0
) -> UserBase:
    """The Hwang et al. (2023) respondents: one user per line of ``users.jsonl``.

    Profiles hold only the attributes the file gives (party and ideology for most, all 12 fields
    for the ``profile_complete`` users). ``answer_index`` indexes the qid's options in
    ``questions.json``; ``Refused`` stays an option (drop it at split time with
    ``split_user(..., drop_refused=True)``). ``user_set`` selects ``all``, ``complete`` or
    ``strat10`` (see :func:`personalign.data.split.select_users`).
    """
    folder = dataset_path(data_dir, *USERS_DIR)
    report = LoadReport(skip_invalid)
    questions = _read_hwang_questions(folder / "questions.json")
    users: list[User] = []
    ids: dict[str, int] = {}
    for where, obj in iter_jsonl(folder / "users.jsonl", report):
        try:
            user = _parse_hwang_user(obj, where, questions, report)
            if user.id in ids:
                raise where.error(
                    f"duplicated user id (first on line {ids[user.id]})", field="user_id", got=user.id
                )
        except DataError as e:
            report.invalid(e)
            continue
        if not user.opinions:
            report.drop("no valid answers", path=where.path, line=where.line, record=user.id)
            continue
        ids[user.id] = where.line or 0
        users.append(user)
    ub = UserBase(
        "opinionqa-users",
        MappingProxyType(questions),
        tuple(users),
        MappingProxyType({"report": report, "source": "/".join(USERS_DIR), "user_set": "all"}),
    )
    if user_set != "all":
        ub = select_users(ub, user_set, seed=seed)
    return ub


# -- opinionqa-groups -------------------------------------------------------------------------------


def _ordinals(raw: Any, n_options: int, where: Where) -> tuple[float | None, ...]:
    values = as_list(raw, where, "option_ordinal", nonempty=False)
    if len(values) > n_options:
        raise where.error(
            "more ordinals than options",
            field="option_ordinal",
            expected=f"at most {n_options} values",
            got=values,
        )
    nums: list[float | None] = [as_number(v, where, f"option_ordinal[{i}]") for i, v in enumerate(values)]
    return tuple(nums + [None] * (n_options - len(nums)))


def read_wave_info(path: Path, report: LoadReport, wanted: set[str] | None = None) -> dict[str, Question]:
    """Questions of one wave's ``info.csv``: ``key``, ``question``, Python-literal ``references``
    (options, in order) and ``option_ordinal`` (ordinals of the leading options; the others, e.g.
    ``Not sure`` and ``Refused``, get ``None``). Only ``wanted`` keys are parsed when given (rows
    of other keys are not checked: W43 repeats some unused keys with different texts); a wanted key
    that occurs twice is an error."""
    _, rows = read_csv(path, report, required=("key", "question", "references", "option_ordinal"))
    wave = path.parent.name
    out: dict[str, Question] = {}
    lines: dict[str, int] = {}
    for line, row in rows:
        qid = row["key"].strip()
        where = Where(str(path), line, qid or None)
        try:
            if not qid:
                raise where.error("empty question id", field="key", expected="a non-empty string")
            if wanted is not None and qid not in wanted:
                continue  # unused rows are not parsed (W43 repeats a few unused keys)
            if qid in lines:
                out.pop(qid, None)
                raise where.error(
                    f"duplicated question id (first on line {lines[qid]})", field="key", got=qid
                )
            lines[qid] = line
            options = literal(row["references"], where, "references", "a Python list of option strings")
            if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
                raise where.error(
                    "bad options", field="references", expected="a list of strings", got=options
                )
            q = make_question(qid, row["question"], options, where)
            ords = _ordinals(
                literal(row["option_ordinal"], where, "option_ordinal", "a Python list of numbers"),
                len(q.options),
                where,
            )
            out[qid] = Question(q.id, q.text, q.options, None, ords, MappingProxyType({"wave": wave}))
        except DataError as e:
            report.invalid(e)
    return out


def iter_group_files(root: Path) -> Iterator[tuple[str, str, Path]]:
    """``(wave, attribute, path)`` of every ``<ATTR>_data.json`` under ``group_counts``, sorted."""
    for wave_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(wave_dir.glob("*_data.json")):
            yield wave_dir.name, f.name[: -len("_data.json")], f


def group_counts(entry: Any, question: Question, where: Where) -> dict[str, list[float]]:
    """``{group value: counts aligned with question.options}`` from one question's entry of a
    ``<ATTR>_data.json`` file. Count keys are matched to options by case-insensitive text (this
    absorbs the ``noR`` typo); options a group never chose count 0."""
    entry = as_dict(entry, where, "(question entry)")
    lookup = {o.casefold(): i for i, o in enumerate(question.options)}
    out: dict[str, list[float]] = {}
    for group, counts in entry.items():
        if group in _RESERVED_KEYS:
            continue
        counts = as_dict(counts, where, group)
        vec = [0.0] * len(question.options)
        for key, value in counts.items():
            idx = lookup.get(key.casefold())
            if idx is None:
                raise where.error(
                    "answer outside the question's options",
                    field=f"{group}[{key!r}]",
                    expected=f"one of {list(question.options)}",
                    got=key,
                )
            if type(value) is float and 0.0 <= value < math.inf:  # fast path for the usual case
                vec[idx] += value
            else:
                vec[idx] += as_number(value, where, f"{group}[{key!r}]", nonneg=True)
        out[str(group)] = vec
    return out


def load_opinionqa_groups(
    data_dir: str | Path | None = None,
    *,
    skip_invalid: bool = False,
    tie_policy: str = "drop",
    attributes: tuple[str, ...] | None = None,
) -> UserBase:
    """One user per demographic group ``(attribute, value)``, ``Refused`` and ``nan`` groups excluded.

    Options, their order and ordinals come from ``references`` / ``option_ordinal`` in the wave's
    ``info.csv`` (never ``MC_options``, which splits options containing commas). A group's opinion on
    a question is its modal option; ``Opinion.distribution`` holds the full answer shares over all
    options (``Refused`` included). Questions where the group's counts are all zero are dropped;
    tied modes are dropped (``tie_policy="drop"``, the default) or resolved to the first option in
    ``references`` order (``"first"``). Both are listed in the report.
    """
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"unknown tie_policy {tie_policy!r}; available: {', '.join(TIE_POLICIES)}")
    root = dataset_path(data_dir, *GROUP_COUNTS_DIR)
    qroot = dataset_path(data_dir, *QUESTIONS_DIR)
    report = LoadReport(skip_invalid)
    files = [f for f in iter_group_files(root) if attributes is None or f[1] in attributes]
    if not files:
        raise DataError(
            "no <ATTR>_data.json files", path=root, expected="group_counts/<WAVE>/<ATTR>_data.json"
        )
    questions: dict[str, Question] = {}
    opinions: dict[str, list[Opinion]] = {}
    seen: dict[tuple[str, str], str] = {}
    by_wave: dict[str, list[tuple[str, Path]]] = {}
    for wave, attr, path in files:
        by_wave.setdefault(wave, []).append((attr, path))
    for wave, attr_files in by_wave.items():
        parsed = []
        wanted: set[str] = set()
        for attr, path in attr_files:
            try:
                data = as_dict(read_json(path), Where(str(path)), "(top level)")
            except DataError as e:
                report.invalid(e)
                continue
            parsed.append((attr, path, data))
            wanted.update(data)
        info = qroot / wave / "info.csv"
        try:
            bank = read_wave_info(info, report, wanted)
        except DataError as e:
            report.invalid(e)
            continue
        for attr, path, data in parsed:
            for qid, entry in data.items():
                where = Where(str(path), record=qid)
                try:
                    if qid not in bank:
                        raise where.error("unknown question id", expected=f"a key in {info}", got=qid)
                    if (attr, qid) in seen:
                        raise where.error(f"duplicated question id (also in {seen[attr, qid]})", got=qid)
                    counts = group_counts(entry, bank[qid], where)
                except DataError as e:
                    report.invalid(e)
                    continue
                seen[attr, qid] = str(path)
                q = questions.setdefault(qid, bank[qid])
                for group, vec in counts.items():
                    if group in EXCLUDED_GROUPS:
                        continue
                    uid = f"{attr}={group}"
                    if sum(vec) == 0:
                        report.drop("all-zero counts", path=path, record=f"{qid} / {group}")
                        continue
                    choice = modal_index(vec)
                    if choice is None:
                        tied = [q.options[i] for i, c in enumerate(vec) if c == max(vec)]
                        if tie_policy == "drop":
                            report.drop(
                                "tied modal answer",
                                path=path,
                                record=f"{qid} / {group}",
                                detail=f"tied: {tied}",
                            )
                            continue
                        choice = vec.index(max(vec))
                    opinions.setdefault(uid, []).append(Opinion(qid, choice, normalized(vec)))
    users = []
    for uid in sorted(opinions):
        attr, _, value = uid.partition("=")
        label = GROUP_ATTRIBUTE_LABELS.get(attr, attr)
        users.append(
            User(
                uid,
                Profile(MappingProxyType({label: value})),
                tuple(opinions[uid]),
                MappingProxyType({"attribute": attr, "value": value}),
            )
        )
    meta = {"report": report, "source": "/".join(GROUP_COUNTS_DIR), "tie_policy": tie_policy}
    return UserBase("opinionqa-groups", MappingProxyType(questions), tuple(users), MappingProxyType(meta))
