"""Property-based tests: random corruptions of every parser's input give a DataError or a correct
load, never another exception."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalign.data import DataError, PreferenceData, UserBase, load_dataset, save_userbase
from personalign.data.csv_import import load_userbase_csv

from .conftest import write_mini_data

# (dataset, file under the mini folder, loader options)
TARGETS = [
    ("opinionqa-users", "opinionqa/hwang2023_users/users.jsonl", {}),
    ("opinionqa-users", "opinionqa/hwang2023_users/questions.json", {}),
    ("opinionqa-groups", "opinionqa/questions/American_Trends_Panel_W26/info.csv", {}),
    ("opinionqa-groups", "opinionqa/group_counts/American_Trends_Panel_W26/SEX_data.json", {}),
    ("globalopinionqa", "globalopinionqa/questions.jsonl", {"min_questions": 1}),
    ("globalopinionqa", "globalopinionqa/country_distributions.jsonl", {"min_questions": 1}),
    ("globalopinionqa-csv", "globalopinionqa/global_opinions_format.csv", {"min_questions": 1}),
    ("hh-rlhf", "hh_rlhf/helpful-base.test.jsonl.gz", {}),
    ("ultrafeedback", "ultrafeedback_binarized_sample/train_clean.jsonl", {}),
]

SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

byte_edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "delete", "insert", "truncate", "dupline", "dropline"]),
        st.floats(0, 1),
        st.integers(1, 8),
        st.binary(min_size=1, max_size=6),
    ),
    min_size=1,
    max_size=4,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 50)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def _apply(data: bytes, edits) -> bytes:
    for op, pos, n, blob in edits:
        i = int(pos * len(data))
        if op == "flip" and data:
            i = min(i, len(data) - 1)
            data = data[:i] + bytes([data[i] ^ blob[0] or 0xFF]) + data[i + 1 :]
        elif op == "delete":
            data = data[:i] + data[i + n :]
        elif op == "insert":
            data = data[:i] + blob + data[i:]
        elif op == "truncate":
            data = data[:i]
        elif op in ("dupline", "dropline"):
            lines = data.split(b"\n")
            j = min(int(pos * len(lines)), len(lines) - 1)
            lines = lines[:j] + ([lines[j]] * 2 if op == "dupline" else []) + lines[j + 1 :]
            data = b"\n".join(lines)
    return data


def _check_loaded(out) -> None:
    """A successful load is a correct one."""
    if isinstance(out, UserBase):
        for u in out.users:
            assert len({o.question_id for o in u.opinions}) == len(u.opinions)
            for o in u.opinions:
                q = out.questions[o.question_id]
                assert q.options and 0 <= o.choice < len(q.options)
                if o.distribution is not None:
                    assert len(o.distribution) == len(q.options)
                    assert all(p >= 0 for p in o.distribution)
    else:
        assert isinstance(out, PreferenceData)
        for p in out:
            assert (
                isinstance(p.prompt, str)
                and p.chosen != p.rejected
                and p.chosen.strip()
                and p.rejected.strip()
            )
        assert len({p.metadata["pair_id"] for p in out}) == len(out)


def _load_corrupted(name: str, rel: str, opts: dict, mutate, skip_invalid: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_mini_data(Path(tmp) / "data")
        path = root / rel
        if path.suffix == ".gz":
            path.write_bytes(
                mutate(gzip.decompress(path.read_bytes())) if skip_invalid else mutate(path.read_bytes())
            )
            if skip_invalid:
                path.write_bytes(gzip.compress(path.read_bytes()))
        else:
            path.write_bytes(mutate(path.read_bytes()))
        try:
            out = load_dataset(name, data_dir=root, skip_invalid=skip_invalid, cache=False, **opts)
        except DataError as e:
            assert str(e)  # a located, printable message
            return
        _check_loaded(out)


@pytest.mark.parametrize(("name", "rel", "opts"), TARGETS, ids=[t[1].split("/")[-1] for t in TARGETS])
@SETTINGS
@given(edits=byte_edits, skip=st.booleans())
def test_byte_corruptions_give_dataerror_or_a_valid_load(name, rel, opts, edits, skip):
    _load_corrupted(name, rel, opts, lambda b: _apply(b, edits), skip)


def _json_mutator(path_choice: float, value):
    """Replace one field (chosen by position) of one JSON record with ``value``."""

    def mutate(data: bytes) -> bytes:
        text = data.decode()
        if text.lstrip().startswith("{") and "\n{" not in text.strip():  # a whole JSON document
            doc = json.loads(text)
            _replace(doc, path_choice, value)
            return json.dumps(doc).encode()
        lines = [json.loads(x) for x in text.splitlines() if x.strip()]
        j = min(int(path_choice * len(lines)), len(lines) - 1)
        _replace(lines[j], path_choice, value)
        return "".join(json.dumps(x) + "\n" for x in lines).encode()

    return mutate


def _replace(obj, choice: float, value) -> None:
    """Walk into ``obj`` along positions derived from ``choice`` and replace one leaf or subtree."""
    depth = 0
    while True:
        keys = list(obj.keys()) if isinstance(obj, dict) else list(range(len(obj)))
        if not keys:
            return
        k = keys[int(choice * 7919 * (depth + 1)) % len(keys)]
        child = obj[k]
        if isinstance(child, dict | list) and child and (int(choice * 104729 * (depth + 1)) % 3):
            obj, depth = child, depth + 1
            continue
        obj[k] = value
        return


JSON_TARGETS = [t for t in TARGETS if t[1].endswith((".json", ".jsonl"))]


@pytest.mark.parametrize(
    ("name", "rel", "opts"), JSON_TARGETS, ids=[t[1].split("/")[-1] for t in JSON_TARGETS]
)
@SETTINGS
@given(choice=st.floats(0, 0.999), value=json_values, skip=st.booleans())
def test_wrong_json_values_give_dataerror_or_a_valid_load(name, rel, opts, choice, value, skip):
    _load_corrupted(name, rel, opts, _json_mutator(choice, value), skip)


@SETTINGS
@given(
    edits=byte_edits,
    skip=st.booleans(),
    which=st.sampled_from(["manifest.json", "questions.jsonl", "users.jsonl"]),
)
def test_project_format_corruptions(edits, skip, which):
    with tempfile.TemporaryDirectory() as tmp:
        root = write_mini_data(Path(tmp) / "data")
        ub = load_dataset("opinionqa-groups", data_dir=root, cache=False)
        out_dir = save_userbase(ub, Path(tmp) / "native")
        (out_dir / which).write_bytes(_apply((out_dir / which).read_bytes(), edits))
        try:
            out = load_dataset(out_dir, skip_invalid=skip)
        except DataError as e:
            assert str(e)
            return
        _check_loaded(out)


CSV_TABLE = (
    "user_id,question_id,question,options,answer,profile:Age,profile_text\n"
    'u1,q1,Do you agree?,"[""Yes"", ""No""]",Yes,30-49,Likes tea\n'
    'u1,q2,How often?,"[""Often"", ""Never"", ""Refused""]",Never,30-49,\n'
    "u2,q1,,,No,,\n"
)


@SETTINGS
@given(edits=byte_edits, skip=st.booleans())
def test_csv_import_corruptions(edits, skip):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "users.csv"
        path.write_bytes(_apply(CSV_TABLE.encode(), edits))
        try:
            out = load_userbase_csv(path, skip_invalid=skip)
        except DataError as e:
            assert str(e)
            return
        _check_loaded(out)


CSV_TARGETS = [
    (
        "opinionqa-groups",
        "opinionqa/questions/American_Trends_Panel_W26/info.csv",
        {},
        ["references", "option_ordinal"],
    ),
    (
        "globalopinionqa-csv",
        "globalopinionqa/global_opinions_format.csv",
        {"min_questions": 1},
        ["selections", "options"],
    ),
]
literal_like = st.one_of(
    st.text(alphabet="[]{}()'\",.:0123456789-eE abcNnaInf\\x", max_size=30),
    st.text(max_size=12),
    json_values.map(repr),
)


@pytest.mark.parametrize(
    ("name", "rel", "opts", "columns"), CSV_TARGETS, ids=["info.csv", "global_opinions.csv"]
)
@SETTINGS
@given(row=st.integers(0, 2), col=st.integers(0, 1), cell=literal_like, skip=st.booleans())
def test_python_literal_cells_give_dataerror_or_a_valid_load(name, rel, opts, columns, row, col, cell, skip):
    import csv
    import io

    def mutate(data: bytes) -> bytes:
        rows = list(csv.DictReader(io.StringIO(data.decode(), newline="")))
        rows[row][columns[col]] = cell
        out = io.StringIO(newline="")
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue().encode()

    _load_corrupted(name, rel, opts, mutate, skip)
