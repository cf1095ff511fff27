"""Import a user base from one CSV table (one row per answer), the shape survey tools export.

Columns (see ``docs/data-format.md``):

* ``user_id``, ``question_id`` (required), and ``answer`` (the option text) or ``answer_index``
  (0-based);
* ``question`` and ``options`` (a JSON array or Python list literal) on at least the first row of
  each question; repeated values must agree;
* optional ``profile:<Attribute>`` columns (empty cell = unknown) and ``profile_text``; a user's
  profile cells must agree across that user's rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

from personalign.data.errors import DataError
from personalign.data.options import make_question
from personalign.data.readers import Where, literal, read_csv
from personalign.data.report import LoadReport
from personalign.data.types import Opinion, Profile, Question, User, UserBase

PROFILE_PREFIX = "profile:"


def _parse_options(cell: str, where: Where) -> Any:
    cell = cell.strip()
    try:
        return json.loads(cell)
    except (json.JSONDecodeError, RecursionError):
        return literal(cell, where, "options", 'a JSON array of option texts, e.g. ["Yes", "No"]')


def load_userbase_csv(path: str | Path, *, skip_invalid: bool = False, name: str | None = None) -> UserBase:
    """A :class:`UserBase` from a long CSV table (module docstring). Strictly validated."""
    path = Path(path)
    report = LoadReport(skip_invalid)
    header, rows = read_csv(path, report, required=("user_id", "question_id"))
    if "answer" not in header and "answer_index" not in header:
        raise DataError(
            "missing answer column",
            path=path,
            line=1,
            expected="a column 'answer' or 'answer_index'",
            got=header,
        )
    profile_cols = [c for c in header if c.startswith(PROFILE_PREFIX)]
    questions: dict[str, Question] = {}
    qlines: dict[str, int] = {}
    users: dict[str, dict[str, Any]] = {}
    for line, row in rows:
        uid, qid = row["user_id"].strip(), row["question_id"].strip()
        where = Where(str(path), line)
        try:
            if not uid:
                raise where.error("empty", field="user_id", expected="a user id")
            if not qid:
                raise where.error("empty", field="question_id", expected="a question id")
            text, opts = row.get("question", "").strip(), row.get("options", "").strip()
            if qid not in questions:
                if not text or not opts:
                    raise where.error(
                        "first row of a question lacks its text or options",
                        field="question/options",
                        expected="the question text and its options on the question's first row",
                    )
                questions[qid] = make_question(qid, text, _parse_options(opts, where), where)
                qlines[qid] = line
            else:
                q = questions[qid]
                if text and text != q.text:
                    raise where.error(f"question text differs from line {qlines[qid]}", field="question")
                if (
                    opts
                    and make_question(qid, q.text, _parse_options(opts, where), where).options != q.options
                ):
                    raise where.error(f"options differ from line {qlines[qid]}", field="options")
            q = questions[qid]
            answer = row.get("answer", "").strip()
            idx_cell = row.get("answer_index", "").strip()
            if idx_cell:
                try:
                    choice = int(idx_cell)
                except ValueError:
                    choice = -1
                if not 0 <= choice < len(q.options):
                    raise where.error(
                        "answer outside the options",
                        field="answer_index",
                        expected=f"an integer in 0..{len(q.options) - 1}",
                        got=idx_cell,
                    )
                if answer and answer != q.options[choice]:
                    raise where.error(
                        "answer text does not match answer_index",
                        field="answer",
                        expected=repr(q.options[choice]),
                        got=answer,
                    )
            elif answer:
                if answer not in q.options:
                    raise where.error(
                        "answer outside the options",
                        field="answer",
                        expected=f"one of {list(q.options)}",
                        got=answer,
                    )
                choice = q.options.index(answer)
            else:
                raise where.error("empty", field="answer", expected="the chosen option's text")
            user = users.setdefault(uid, {"attrs": {}, "text": None, "ops": {}, "line": line})
            for col in profile_cols:
                val = row[col].strip()
                key = col[len(PROFILE_PREFIX) :]
                if val and user["attrs"].setdefault(key, val) != val:
                    raise where.error(
                        f"profile differs from an earlier row of user {uid!r}",
                        field=col,
                        expected=repr(user["attrs"][key]),
                        got=val,
                    )
            ptext = row.get("profile_text", "").strip()
            if ptext:
                if user["text"] is None:
                    user["text"] = ptext
                elif user["text"] != ptext:
                    raise where.error(
                        f"profile text differs from an earlier row of user {uid!r}", field="profile_text"
                    )
            if qid in user["ops"]:
                raise where.error(
                    f"duplicated answer of user {uid!r} to this question", field="question_id", got=qid
                )
            user["ops"][qid] = Opinion(qid, choice)
        except DataError as e:
            report.invalid(e)
    out = [
        User(uid, Profile(MappingProxyType(u["attrs"]), u["text"]), tuple(u["ops"].values()))
        for uid, u in users.items()
        if u["ops"]
    ]
    meta = {"report": report, "source": str(path)}
    return UserBase(name or path.stem, MappingProxyType(questions), tuple(out), MappingProxyType(meta))
