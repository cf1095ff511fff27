"""The project's own format (round trips from every loader, schemas, versioning) and CSV import."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalign.data import (
    DATASETS,
    FORMAT_VERSION,
    DataError,
    PreferenceData,
    UserBase,
    load_dataset,
    load_preference_pairs,
    load_userbase,
    save_preference_pairs,
    save_userbase,
    userbase_stats,
)
from personalign.data.native import SCHEMA_DIR

# -- a small checker for the JSON Schema subset the schema files use ----------------------------


def _type_ok(value, t) -> bool:
    types = t if isinstance(t, list) else [t]
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "null": lambda v: v is None,
        "boolean": lambda v: isinstance(v, bool),
    }
    return any(checks[x](value) for x in types)


def check_schema(value, schema, where="$") -> None:
    if "type" in schema:
        assert _type_ok(value, schema["type"]), f"{where}: {value!r} is not {schema['type']}"
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], where
    if "minimum" in schema and isinstance(value, int | float):
        assert value >= schema["minimum"], where
    if "minLength" in schema and isinstance(value, str):
        assert len(value) >= schema["minLength"], where
    if isinstance(value, dict):
        for r in schema.get("required", []):
            assert r in value, f"{where}: missing {r}"
        props = schema.get("properties", {})
        for k, v in value.items():
            if k in props:
                check_schema(v, props[k], f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                raise AssertionError(f"{where}: unexpected property {k}")
            elif isinstance(schema.get("additionalProperties"), dict):
                check_schema(v, schema["additionalProperties"], f"{where}.{k}")
    if isinstance(value, list):
        if "minItems" in schema:
            assert len(value) >= schema["minItems"], where
        if schema.get("uniqueItems"):
            assert len({json.dumps(v) for v in value}) == len(value), where
        for i, v in enumerate(value):
            if "items" in schema:
                check_schema(v, schema["items"], f"{where}[{i}]")


def _schema(name: str) -> dict:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())


def _check_folder(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    check_schema(manifest, _schema("manifest"))
    for file, schema in (("questions.jsonl", "question"), ("users.jsonl", "user"), ("pairs.jsonl", "pair")):
        if (folder / file).exists():
            for line in (folder / file).read_text().splitlines()[:400]:  # a sample keeps the test fast
                check_schema(json.loads(line), _schema(schema))


def test_schema_checker_rejects_bad_records():
    with pytest.raises(AssertionError):
        check_schema({"id": "q", "text": "t", "options": []}, _schema("question"))
    with pytest.raises(AssertionError):
        check_schema({"id": "u", "opinions": [{"question_id": "q", "choice": -1}]}, _schema("user"))


def _same_userbase(a: UserBase, b: UserBase) -> None:
    assert set(a.questions) == set(b.questions)
    for qid, q in a.questions.items():
        r = b.questions[qid]
        assert (q.text, q.options, q.option_values, q.ordinals) == (
            r.text,
            r.options,
            r.option_values,
            r.ordinals,
        )
    assert [u.id for u in a.users] == [u.id for u in b.users]
    for u, v in zip(a.users, b.users, strict=True):
        assert dict(u.profile.attributes) == dict(v.profile.attributes) and u.profile.text == v.profile.text
        assert u.opinions == v.opinions


OPINION_SETS = ["opinionqa-users", "opinionqa-groups", "globalopinionqa", "globalopinionqa-csv"]


@pytest.mark.parametrize("name", OPINION_SETS)
def test_every_opinion_loader_round_trips(name, data_dir, tmp_path):
    ub = load_dataset(name, data_dir=data_dir)
    folder = save_userbase(ub, tmp_path / name)
    _check_folder(folder)
    back = load_userbase(folder)
    assert isinstance(back, UserBase) and back.name == ub.name
    _same_userbase(ub, back)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert manifest["counts"]["users"] == len(ub.users)
    assert userbase_stats(back) == userbase_stats(ub)


@pytest.mark.parametrize("name", ["hh-rlhf", "ultrafeedback"])
def test_every_preference_loader_round_trips(name, data_dir, tmp_path):
    pairs = load_preference_pairs(name, data_dir=data_dir)
    folder = save_preference_pairs(pairs, tmp_path / name)
    _check_folder(folder)
    back = load_dataset(folder)
    assert isinstance(back, PreferenceData) and len(back) == len(pairs)
    for p, q in zip(pairs, back, strict=True):
        assert (p.prompt, p.chosen, p.rejected) == (q.prompt, q.chosen, q.rejected)
        assert dict(p.metadata) == dict(q.metadata)
    if name == "hh-rlhf":
        assert len(load_preference_pairs(folder, subsets=["harmless"])) == pairs.subsets()["harmless"]


def test_every_registered_loader_is_exportable(mini_dir, tmp_path):
    """Each registered dataset loads (mini data, or a path) and saves to the project format."""
    csv_path = tmp_path / "t.csv"
    csv_path.write_text('user_id,question_id,question,options,answer\nu1,q1,Q?,"[""a"", ""b""]",a\n')
    native = save_userbase(load_dataset("opinionqa-users", data_dir=mini_dir, cache=False), tmp_path / "n")
    for name in DATASETS.names():
        opts = {"min_questions": 1} if name.startswith("globalopinionqa") else {}
        if name == "csv":
            opts = {"path": csv_path}
        if name == "userbase":
            opts = {"path": native}
        out = load_dataset(name, data_dir=mini_dir, cache=False, **opts)
        folder = tmp_path / f"out-{name}"
        (save_userbase if isinstance(out, UserBase) else save_preference_pairs)(out, folder)
        _check_folder(folder)
        assert load_userbase(folder) is not None


def test_newer_format_version_is_refused(mini_dir, tmp_path):
    folder = save_userbase(load_dataset("opinionqa-users", data_dir=mini_dir, cache=False), tmp_path / "n")
    m = json.loads((folder / "manifest.json").read_text())
    m["format_version"] = FORMAT_VERSION + 1
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(DataError, match="newer personalign"):
        load_userbase(folder)
    with pytest.raises(DataError, match=r"no manifest\.json"):
        load_userbase(tmp_path)


def test_project_format_validation(mini_dir, tmp_path):
    folder = save_userbase(load_dataset("opinionqa-users", data_dir=mini_dir, cache=False), tmp_path / "n")
    users = (folder / "users.jsonl").read_text().splitlines()
    rec = json.loads(users[1])
    rec["opinions"][0]["choice"] = 9
    users[1] = json.dumps(rec)
    users.append(users[0])  # duplicated user id
    (folder / "users.jsonl").write_text("\n".join(users) + "\n")
    with pytest.raises(DataError) as e:
        load_userbase(folder)
    assert e.value.line == 2 and e.value.field == "opinions[0].choice"
    ub = load_userbase(folder, skip_invalid=True)
    from personalign.data import report_of

    reasons = [(s.line, s.reason) for s in report_of(ub).skipped]
    assert (2, "opinions[0].choice: bad value") in reasons
    assert any(line == 4 and "duplicated user id" in why for line, why in reasons)


# -- CSV import ------------------------------------------------------------------------------------

CSV = (
    "user_id,question_id,question,options,answer,profile:Age,profile:Party,profile_text\n"
    'u1,q1,Do you agree?,"[""Yes"", ""No"", ""Refused""]",Yes,30-49,,Likes tea\n'
    'u1,q2,Scale?,"[0.0, 5.0, 10.0]",10,30-49,,\n'
    "u2,q1,,,No,,Democrat,\n"
)


def test_csv_import(tmp_path):
    path = tmp_path / "team.csv"
    path.write_text(CSV)
    ub = load_dataset(str(path))
    assert [u.id for u in ub.users] == ["u1", "u2"]
    u1, u2 = ub.users
    assert dict(u1.profile.attributes) == {"Age": "30-49"} and u1.profile.text == "Likes tea"
    assert dict(u2.profile.attributes) == {"Party": "Democrat"}  # unknown Age stays unknown
    assert [(o.question_id, o.choice) for o in u1.opinions] == [("q1", 0), ("q2", 2)]
    assert ub.questions["q2"].options == ("0", "5", "10") and ub.questions["q2"].option_values == (
        0.0,
        5.0,
        10.0,
    )
    assert load_dataset("csv", path=path).users == ub.users


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("u3,q1,,,Maybe,,,", "answer", "answer outside the options"),
        ("u3,q9,,,Yes,,,", "question/options", "lacks its text or options"),
        ("u3,q3,Empty?,[],Yes,,,", "options", "empty or missing option list"),
        ("u1,q1,,,No,,,", "question_id", "duplicated answer"),
        ('u1,q3,New?,"[""a""]",a,50-64,,', "profile:Age", "profile differs"),
        ("u3,q1,Other text?,,Yes,,,", "question", "question text differs"),
    ],
)
def test_csv_import_errors(tmp_path, row, field, message):
    path = tmp_path / "bad.csv"
    path.write_text(CSV + row + "\n")
    with pytest.raises(DataError) as e:
        load_dataset(path)
    assert e.value.line == 5 and e.value.field == field and message in str(e.value)
    ub = load_dataset(path, skip_invalid=True)
    assert sum(len(u.opinions) for u in ub.users) == 3


def test_csv_import_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,question_id,answer\n")
    with pytest.raises(DataError, match="missing column"):
        load_dataset(path)
