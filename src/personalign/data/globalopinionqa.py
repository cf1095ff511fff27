"""GlobalOpinionQA (Durmus et al. 2023), country as user, from either layout:

* ``jsonl`` (default): ``globalopinionqa/questions.jsonl`` + ``country_distributions.jsonl``;
  question ids are the ``q_index`` values.
* ``csv``: the original ``global_opinions.csv`` layout (``global_opinions_format.csv``): one row per
  question, ``selections`` is the text ``defaultdict(<class 'list'>, {'Country': [p1, …], …})``,
  ``options`` a Python-literal list (numbers allowed); question ids are the 0-based data-row numbers.

A country's opinion on a question is its modal option, with the distribution kept. All-zero
distributions and tied modes are dropped, then countries with fewer than ``min_questions`` usable
questions; every drop is listed in the report. Numeric options become text (``10.0`` -> ``"10"``)
with the original values in ``Question.option_values``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import MappingProxyType
from typing import Any

from personalign.data.datadir import dataset_path
from personalign.data.errors import DataError
from personalign.data.options import make_question, modal_index, parse_distribution
from personalign.data.readers import (
    Where,
    as_dict,
    as_int,
    as_str,
    get_field,
    iter_jsonl,
    literal,
    read_csv,
)
from personalign.data.report import LoadReport
from personalign.data.types import Opinion, Profile, Question, User, UserBase

DIR = "globalopinionqa"
LAYOUTS = ("jsonl", "csv")
PROFILE_TEMPLATE = "You live in {country}."
_DEFAULTDICT = re.compile(r"^\s*defaultdict\(\s*<class 'list'>\s*,\s*(.*)\)\s*$", re.DOTALL)

# (where, country, question id, distribution)
_Row = tuple[Where, str, str, tuple[float, ...]]


def _read_jsonl_layout(folder: Path, report: LoadReport) -> tuple[dict[str, Question], list[_Row]]:
    questions: dict[str, Question] = {}
    qlines: dict[str, int] = {}
    for where, obj in iter_jsonl(folder / "questions.jsonl", report):
        try:
            qid = str(as_int(get_field(obj, "q_index", where), where, "q_index", 0))
            if qid in qlines:
                raise where.error(
                    f"duplicated question id (first on line {qlines[qid]})", field="q_index", got=qid
                )
            text = as_str(get_field(obj, "question", where), where, "question")
            q = make_question(qid, text, get_field(obj, "options", where), where)
        except DataError as e:
            report.invalid(e)
            continue
        qlines[qid] = where.line or 0
        questions[qid] = q
    rows: list[_Row] = []
    seen: dict[tuple[str, str], int] = {}
    for where, obj in iter_jsonl(folder / "country_distributions.jsonl", report):
        try:
            country = as_str(get_field(obj, "country", where), where, "country").strip()
            qid = str(as_int(get_field(obj, "q_index", where), where, "q_index", 0))
            if qid not in questions:
                raise where.error(
                    "unknown question id",
                    field="q_index",
                    expected="a q_index of questions.jsonl",
                    got=int(qid),
                )
            if (country, qid) in seen:
                raise where.error(
                    f"duplicated (country, q_index) (first on line {seen[country, qid]})",
                    field="q_index",
                    got=int(qid),
                )
            dist = parse_distribution(
                get_field(obj, "distribution", where), len(questions[qid].options), where
            )
        except DataError as e:
            report.invalid(e)
            continue
        seen[country, qid] = where.line or 0
        rows.append((where, country, qid, dist))
    return questions, rows


def parse_selections(text: str, where: Where) -> dict[str, Any]:
    """The ``selections`` cell: ``defaultdict(<class 'list'>, {...})`` or a plain dict literal.
    Duplicated countries are an error (``ast.literal_eval`` would silently keep the last)."""
    m = _DEFAULTDICT.match(text)
    body = m.group(1) if m else text
    try:
        node = ast.parse(body.strip(), mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        node = None
    if not isinstance(node, ast.Dict):
        raise where.error(
            "not a country -> distribution mapping",
            field="selections",
            expected="defaultdict(<class 'list'>, {'Country': [p1, ...], ...})",
            got=text,
        )
    keys = []
    for k in node.keys:
        if not isinstance(k, ast.Constant) or not isinstance(k.value, str):
            raise where.error("bad country name", field="selections", expected="string keys", got=text)
        keys.append(k.value)
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise where.error(f"duplicated country {dup!r}", field="selections", expected="each country once")
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise where.error(
            "not a valid Python literal",
            field="selections",
            expected="a dict literal of country -> list of numbers",
            got=text,
        ) from None
    return as_dict(value, where, "selections")


def _read_csv_layout(path: Path, report: LoadReport) -> tuple[dict[str, Question], list[_Row]]:
    _, table = read_csv(path, report, required=("question", "selections", "options"))
    questions: dict[str, Question] = {}
    rows: list[_Row] = []
    keys: dict[tuple[str, tuple[str, ...]], int] = {}
    for n, (line, row) in enumerate(table):
        qid = str(n)
        where = Where(str(path), line, f"row {qid}")
        try:
            options = literal(row["options"], where, "options", "a Python list of options")
            meta = {"source": row["source"].strip()} if row.get("source", "").strip() else {}
            q = make_question(qid, row["question"], options, where, meta=meta)
            if (q.text, q.options) in keys:
                raise where.error(
                    f"duplicated question (first on line {keys[q.text, q.options]})", field="question"
                )
            selections = parse_selections(row["selections"], where)
            parsed = []
            for country, values in selections.items():
                if not country.strip():
                    raise where.error("empty country name", field="selections")
                parsed.append(
                    (
                        country.strip(),
                        parse_distribution(values, len(q.options), where, f"selections[{country!r}]"),
                    )
                )
        except DataError as e:
            report.invalid(e)
            continue
        keys[q.text, q.options] = line
        questions[qid] = q
        rows.extend((where, c, qid, d) for c, d in parsed)
    return questions, rows


def _build_users(
    rows: list[_Row],
    questions: dict[str, Question],
    report: LoadReport,
    *,
    min_questions: int,
    tie_policy: str,
) -> list[User]:
    per_country: dict[str, list[Opinion]] = {}
    for where, country, qid, dist in rows:
        if sum(dist) == 0:
            report.drop(
                "all-zero distribution", path=where.path, line=where.line, record=f"{country} / q {qid}"
            )
            continue
        choice = modal_index(dist)
        if choice is None:
            if tie_policy == "drop":
                report.drop(
                    "tied modal option", path=where.path, line=where.line, record=f"{country} / q {qid}"
                )
                continue
            choice = dist.index(max(dist))
        per_country.setdefault(country, []).append(Opinion(qid, choice, dist))
    users = []
    for country in sorted(per_country):
        ops = per_country[country]
        if len(ops) < min_questions:
            report.drop(
                "too few usable questions",
                record=country,
                detail=f"{len(ops)} < min_questions={min_questions}",
            )
            continue
        users.append(
            User(
                country,
                Profile(text=PROFILE_TEMPLATE.format(country=country)),
                tuple(ops),
                MappingProxyType({"country": country}),
            )
        )
    return users


def load_globalopinionqa(
    data_dir: str | Path | None = None,
    *,
    skip_invalid: bool = False,
    layout: str = "jsonl",
    min_questions: int = 30,
    tie_policy: str = "drop",
) -> UserBase:
    """Countries as users (see the module docstring). ``layout`` is ``"jsonl"`` or ``"csv"``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; available: {', '.join(LAYOUTS)}")
    if tie_policy not in ("drop", "first"):
        raise ValueError(f"unknown tie_policy {tie_policy!r}; available: drop, first")
    folder = dataset_path(data_dir, DIR)
    report = LoadReport(skip_invalid)
    if layout == "jsonl":
        questions, rows = _read_jsonl_layout(folder, report)
        source = f"{DIR}/questions.jsonl + country_distributions.jsonl"
    else:
        questions, rows = _read_csv_layout(folder / "global_opinions_format.csv", report)
        source = f"{DIR}/global_opinions_format.csv"
    users = _build_users(rows, questions, report, min_questions=min_questions, tie_policy=tie_policy)
    meta = {
        "report": report,
        "source": source,
        "layout": layout,
        "min_questions": min_questions,
        "tie_policy": tie_policy,
        "rows": len(rows),
    }
    name = "globalopinionqa" if layout == "jsonl" else "globalopinionqa-csv"
    return UserBase(name, MappingProxyType(questions), tuple(users), MappingProxyType(meta))


def load_globalopinionqa_csv(data_dir: str | Path | None = None, **options: Any) -> UserBase:
    """GlobalOpinionQA from the original CSV layout (``layout="csv"``)."""
    return load_globalopinionqa(data_dir, layout="csv", **options)
