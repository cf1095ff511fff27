"""Strict validation: every kind of bad input gives a DataError naming file, line/record, field and
expectation; skip_invalid loads the rest and reports exactly what was skipped."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from personalign.data import DataError, load_dataset, report_of
from personalign.data.readers import read_json


def _rewrite_jsonl(path: Path, edit) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    edit(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _users(mini: Path) -> Path:
    return mini / "opinionqa/hwang2023_users/users.jsonl"


# -- the miniature folder itself is valid ----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "opinionqa-users",
        "opinionqa-groups",
        "globalopinionqa",
        "globalopinionqa-csv",
        "hh-rlhf",
        "ultrafeedback",
    ],
)
def test_mini_folder_loads_cleanly(mini_dir, name):
    opts = {"min_questions": 1} if name.startswith("globalopinionqa") else {}
    out = load_dataset(name, data_dir=mini_dir, cache=False, **opts)
    assert report_of(out).skipped == []
    assert len(out.users if hasattr(out, "users") else out) > 0


# -- duplicated ids --------------------------------------------------------------------------------


def test_duplicated_user_id(mini_dir):
    _rewrite_jsonl(_users(mini_dir), lambda rows: rows.append(dict(rows[0])))
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-users", data_dir=mini_dir, cache=False)
    err = e.value
    assert err.path.endswith("users.jsonl") and err.line == 4 and err.field == "user_id"
    assert "duplicated user id" in str(err) and "first on line 1" in str(err)
    ub = load_dataset("opinionqa-users", data_dir=mini_dir, skip_invalid=True, cache=False)
    assert [u.id for u in ub.users] == ["1", "2", "3"]
    skipped = report_of(ub).skipped
    assert len(skipped) == 1 and skipped[0].line == 4


def test_duplicated_question_key_in_json(mini_dir):
    path = mini_dir / "opinionqa/hwang2023_users/questions.json"
    text = path.read_text().rstrip().rstrip("}") + ', "Q1_W26": {"question": "again", "options": ["a"]}}'
    path.write_text(text)
    with pytest.raises(DataError, match="duplicated key 'Q1_W26'"):
        read_json(path)
    with pytest.raises(DataError, match="duplicated key"):
        load_dataset("opinionqa-users", data_dir=mini_dir, cache=False)


def test_duplicated_question_in_globalopinionqa(mini_dir):
    _rewrite_jsonl(mini_dir / "globalopinionqa/questions.jsonl", lambda rows: rows.append(rows[1]))
    with pytest.raises(DataError) as e:
        load_dataset("globalopinionqa", data_dir=mini_dir, cache=False, min_questions=1)
    assert e.value.line == 4 and e.value.field == "q_index" and "duplicated question id" in str(e.value)


def test_duplicated_country_in_csv_selections(mini_dir):
    path = mini_dir / "globalopinionqa/global_opinions_format.csv"
    path.write_text(
        path.read_text().replace("{'France': [0.9, 0.1],", "{'France': [0.9, 0.1], 'France': [0.1, 0.9],")
    )
    with pytest.raises(DataError) as e:
        load_dataset("globalopinionqa-csv", data_dir=mini_dir, cache=False, min_questions=1)
    assert e.value.field == "selections" and "duplicated country 'France'" in str(e.value)
    assert e.value.line == 4


# -- answers outside the options -------------------------------------------------------------------


def test_answer_index_outside_options(mini_dir):
    def edit(rows):
        rows[1]["answers"][1]["answer_index"] = 7

    _rewrite_jsonl(_users(mini_dir), edit)
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-users", data_dir=mini_dir, cache=False)
    err = e.value
    assert (err.line, err.field) == (2, "answers[1].answer_index")
    assert err.expected == "an integer in 0..2" and err.got == 7
    assert str(err).endswith(
        "users.jsonl:2: field 'answers[1].answer_index': bad value; expected an integer in 0..2, got 7"
    )
    ub = load_dataset("opinionqa-users", data_dir=mini_dir, skip_invalid=True, cache=False)
    assert [len(u.opinions) for u in ub.users] == [3, 1, 3]  # only the bad answer is skipped


def test_answer_text_disagreeing_with_index(mini_dir):
    def edit(rows):
        rows[0]["answers"][0]["answer"] = "No"

    _rewrite_jsonl(_users(mini_dir), edit)
    with pytest.raises(DataError, match="answer text does not match answer_index"):
        load_dataset("opinionqa-users", data_dir=mini_dir, cache=False)


def test_group_count_key_outside_options(mini_dir):
    path = mini_dir / "opinionqa/group_counts/American_Trends_Panel_W26/SEX_data.json"
    data = json.loads(path.read_text())
    data["Q1_W26"]["Female"]["Maybe"] = 3.0
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-groups", data_dir=mini_dir, cache=False)
    assert e.value.record == "Q1_W26" and e.value.field == "Female['Maybe']"
    assert "answer outside the question's options" in str(e.value)
    ub = load_dataset("opinionqa-groups", data_dir=mini_dir, skip_invalid=True, cache=False)
    assert all(o.question_id != "Q1_W26" for u in ub.users if u.id.startswith("SEX") for o in u.opinions)
    assert len(report_of(ub).skipped) == 1


def test_distribution_length_mismatch(mini_dir):
    def edit(rows):
        rows[2]["distribution"] = [1.0]

    _rewrite_jsonl(mini_dir / "globalopinionqa/country_distributions.jsonl", edit)
    with pytest.raises(DataError) as e:
        load_dataset("globalopinionqa", data_dir=mini_dir, cache=False, min_questions=1)
    assert e.value.line == 3 and e.value.field == "distribution" and "a list of 2 numbers" in str(e.value)


# -- empty option lists ----------------------------------------------------------------------------


def test_empty_option_list_hwang(mini_dir):
    path = mini_dir / "opinionqa/hwang2023_users/questions.json"
    data = json.loads(path.read_text())
    data["Q2_W26"]["options"] = []
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-users", data_dir=mini_dir, cache=False)
    assert e.value.record == "Q2_W26" and e.value.field == "options"
    assert "non-empty list of options" in str(e.value)


def test_empty_option_list_globalopinionqa_csv(mini_dir):
    path = mini_dir / "globalopinionqa/global_opinions_format.csv"
    path.write_text(path.read_text().replace("\"['Yes', 'No']\"", '"[]"'))
    with pytest.raises(DataError) as e:
        load_dataset("globalopinionqa-csv", data_dir=mini_dir, cache=False, min_questions=1)
    assert e.value.line == 4 and e.value.field == "options"
    ub = load_dataset(
        "globalopinionqa-csv", data_dir=mini_dir, cache=False, min_questions=1, skip_invalid=True
    )
    assert len(ub.questions) == 2 and report_of(ub).skipped[0].line == 4


def test_empty_references_in_info_csv(mini_dir):
    path = mini_dir / "opinionqa/questions/American_Trends_Panel_W26/info.csv"
    path.write_text(path.read_text().replace("\"['Yes', 'No', 'Refused']\"", '"[]"'))
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-groups", data_dir=mini_dir, cache=False)
    assert e.value.line == 2 and e.value.field == "options"


# -- unknown question ids --------------------------------------------------------------------------


def test_unknown_question_id_in_answers(mini_dir):
    def edit(rows):
        rows[2]["answers"][0]["qid"] = "NOPE_W26"

    _rewrite_jsonl(_users(mini_dir), edit)
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-users", data_dir=mini_dir, cache=False)
    assert (e.value.line, e.value.field, e.value.got) == (3, "answers[0].qid", "NOPE_W26")
    assert "unknown question id" in str(e.value)


def test_unknown_question_id_in_group_counts(mini_dir):
    path = mini_dir / "opinionqa/group_counts/American_Trends_Panel_W26/SEX_data.json"
    data = json.loads(path.read_text())
    data["ZZZ_W26"] = data["Q1_W26"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-groups", data_dir=mini_dir, cache=False)
    assert e.value.record == "ZZZ_W26" and "unknown question id" in str(e.value)


def test_unknown_question_id_in_country_distributions(mini_dir):
    _rewrite_jsonl(
        mini_dir / "globalopinionqa/country_distributions.jsonl",
        lambda rows: rows.append({"country": "Chile", "q_index": 99, "distribution": [1.0]}),
    )
    with pytest.raises(DataError) as e:
        load_dataset("globalopinionqa", data_dir=mini_dir, cache=False, min_questions=1)
    assert e.value.line == 9 and e.value.field == "q_index" and "unknown question id" in str(e.value)


# -- encodings, truncation, syntax -----------------------------------------------------------------


def test_non_utf8_bytes(mini_dir):
    path = _users(mini_dir)
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"Republican", b"Rep\xffublican")
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-users", data_dir=mini_dir, cache=False)
    assert e.value.line == 2 and "invalid UTF-8 byte 0xff" in str(e.value)
    ub = load_dataset("opinionqa-users", data_dir=mini_dir, skip_invalid=True, cache=False)
    assert [u.id for u in ub.users] == ["1", "3"]


def test_non_utf8_in_csv(mini_dir):
    path = mini_dir / "globalopinionqa/global_opinions_format.csv"
    path.write_bytes(path.read_bytes().replace(b"Rate your", b"Rate \xc3\x28your"))
    with pytest.raises(DataError) as e:
        load_dataset("globalopinionqa-csv", data_dir=mini_dir, cache=False)
    assert e.value.line == 3 and "UTF-8" in str(e.value)


def test_truncated_gzip(mini_dir):
    path = mini_dir / "hh_rlhf/helpful-base.test.jsonl.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 12])
    with pytest.raises(DataError) as e:
        load_dataset("hh-rlhf", data_dir=mini_dir, cache=False)
    assert e.value.path.endswith("helpful-base.test.jsonl.gz") and "truncated or corrupt gzip" in str(e.value)
    pairs = load_dataset("hh-rlhf", data_dir=mini_dir, skip_invalid=True, cache=False)
    assert pairs.subsets()["harmless"] == 1  # the other file still loads
    assert any("gzip" in s.reason for s in report_of(pairs).skipped)


def test_truncated_gzip_real_file(data_dir, tmp_path):
    src = data_dir / "hh_rlhf/harmless-base.test.jsonl.gz"
    (tmp_path / "hh_rlhf").mkdir()
    raw = src.read_bytes()
    (tmp_path / "hh_rlhf/harmless-base.test.jsonl.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        load_dataset("hh-rlhf", data_dir=tmp_path, subsets=("harmless",), cache=False)
    pairs = load_dataset("hh-rlhf", data_dir=tmp_path, subsets=("harmless",), skip_invalid=True, cache=False)
    assert 0 < len(pairs) < 2312  # the complete lines before the damage


def test_invalid_json_line(mini_dir):
    path = mini_dir / "ultrafeedback_binarized_sample/train_clean.jsonl"
    path.write_text(path.read_text() + '{"prompt": "x", "chosen": \n')
    with pytest.raises(DataError) as e:
        load_dataset("ultrafeedback", data_dir=mini_dir, cache=False)
    assert e.value.line == 3 and "invalid JSON" in str(e.value)


def test_missing_field_and_wrong_type(mini_dir):
    _rewrite_jsonl(
        mini_dir / "ultrafeedback_binarized_sample/eval_clean.jsonl",
        lambda rows: rows[0]["metadata"].pop("score_rejected"),
    )
    with pytest.raises(DataError) as e:
        load_dataset("ultrafeedback", data_dir=mini_dir, cache=False)
    assert e.value.field == "metadata.score_rejected" and "missing" in str(e.value)


def test_hh_dialogue_without_assistant_turn(mini_dir):
    path = mini_dir / "hh_rlhf/harmless-base.test.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"chosen": "\\n\\nHuman: hi", "rejected": "\\n\\nHuman: hi"}\n'))
    with pytest.raises(DataError) as e:
        load_dataset("hh-rlhf", data_dir=mini_dir, cache=False)
    assert e.value.field == "chosen" and "no assistant turn" in str(e.value)


def test_bad_python_literal(mini_dir):
    path = mini_dir / "opinionqa/questions/American_Trends_Panel_W26/info.csv"
    path.write_text(path.read_text().replace('"[1.0, 2.0]"', '"[1.0, 2.0"', 1))
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-groups", data_dir=mini_dir, cache=False)
    assert e.value.field == "option_ordinal" and e.value.line == 2 and "Python literal" in str(e.value)


def test_bad_distribution_values(mini_dir):
    def edit(rows):
        rows[0]["distribution"] = [0.2, -0.1, 0.9]

    _rewrite_jsonl(mini_dir / "globalopinionqa/country_distributions.jsonl", edit)
    with pytest.raises(DataError, match=r"distribution\[1\]"):
        load_dataset("globalopinionqa", data_dir=mini_dir, cache=False, min_questions=1)


def test_all_zero_distribution_dropped_with_report(mini_dir):
    ub = load_dataset("globalopinionqa", data_dir=mini_dir, cache=False, min_questions=1)
    zero = [d for d in report_of(ub).dropped if d.reason == "all-zero distribution"]
    assert len(zero) == 1 and zero[0].line == 5 and zero[0].record == "Japan / q 1"
    assert all(o.question_id != "1" for o in ub.user("Japan").opinions)


def test_countries_with_too_few_questions_are_dropped(mini_dir):
    ub = load_dataset("globalopinionqa", data_dir=mini_dir, cache=False, min_questions=2)
    assert [u.id for u in ub.users] == ["France", "Peru"]
    assert [d.record for d in report_of(ub).dropped if d.reason == "too few usable questions"] == ["Japan"]


# -- offline behaviour -----------------------------------------------------------------------------


def test_missing_data_dir_says_how_to_point_at_a_copy(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-users", data_dir=tmp_path / "nowhere", cache=False)
    assert "--data-dir" in str(e.value) and "PERSONALIGN_DATA_DIR" in str(e.value)
    with pytest.raises(DataError) as e:
        load_dataset("opinionqa-users", data_dir=tmp_path, cache=False)  # folder exists, dataset does not
    assert "opinionqa/hwang2023_users" in str(e.value) and "PERSONALIGN_DATA_DIR" in str(e.value)


def test_env_var_points_at_the_data(mini_dir, monkeypatch):
    monkeypatch.setenv("PERSONALIGN_DATA_DIR", str(mini_dir))
    assert len(load_dataset("opinionqa-users", cache=False).users) == 3
    monkeypatch.setenv("PERSONALIGN_DATA_DIR", str(mini_dir / "missing"))
    with pytest.raises(DataError, match="PERSONALIGN_DATA_DIR"):
        load_dataset("opinionqa-users", cache=False)


def test_unknown_dataset_lists_available():
    from personalign.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"available: .*opinionqa-users"):
        load_dataset("no-such-dataset")


def test_unknown_loader_option_lists_available(mini_dir):
    with pytest.raises(ValueError, match=r"unknown option 'nope' for dataset 'hh-rlhf'; available: subsets"):
        load_dataset("hh-rlhf", data_dir=mini_dir, nope=1)


def test_cache_sees_changed_files(mini_dir):
    a = load_dataset("opinionqa-users", data_dir=mini_dir)
    assert load_dataset("opinionqa-users", data_dir=mini_dir) is a
    _rewrite_jsonl(_users(mini_dir), lambda rows: rows.pop())
    b = load_dataset("opinionqa-users", data_dir=mini_dir)
    assert len(b.users) == 2 and len(a.users) == 3
