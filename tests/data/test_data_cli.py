"""`personalign data` commands (through typer's runner) and the summary statistics."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from personalign.cli.app import app
from personalign.data import load_dataset, userbase_stats

runner = CliRunner()


def test_list_shows_every_dataset():
    res = runner.invoke(app, ["data", "list"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    for name in ("opinionqa-users", "opinionqa-groups", "globalopinionqa", "hh-rlhf", "ultrafeedback", "csv"):
        assert name in res.output


def test_info_on_real_users(data_dir):
    res = runner.invoke(
        app, ["data", "info", "opinionqa-users", "--data-dir", str(data_dir)], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 0, res.output
    assert "420" in res.output and "15,061" in res.output and "Profile completeness" in res.output
    assert "Answer-option balance" in res.output


def test_info_on_pairs_and_skip_report(mini_dir):
    res = runner.invoke(app, ["data", "info", "hh-rlhf", "--data-dir", str(mini_dir)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "unequal prompts" in res.output and "identical responses" in res.output
    users = mini_dir / "opinionqa/hwang2023_users/users.jsonl"
    users.write_text(users.read_text() + "{not json}\n")
    res = runner.invoke(app, ["data", "info", "opinionqa-users", "--data-dir", str(mini_dir)])
    assert res.exit_code == 2 and "users.jsonl:4" in res.output and "invalid JSON" in res.output
    res = runner.invoke(
        app,
        ["data", "info", "opinionqa-users", "--data-dir", str(mini_dir), "--skip-invalid"],
        env={"COLUMNS": "200"},
    )
    assert (
        res.exit_code == 0 and "Skipped invalid records (1)" in res.output and "users.jsonl:4" in res.output
    )


def test_missing_data_dir_message(tmp_path):
    res = runner.invoke(app, ["data", "info", "opinionqa-users", "--data-dir", str(tmp_path / "none")])
    assert res.exit_code == 2 and "PERSONALIGN_DATA_DIR" in res.output


def test_convert_then_info_and_split(mini_dir, tmp_path):
    out = tmp_path / "conv"
    res = runner.invoke(
        app, ["data", "convert", "opinionqa-groups", "--data-dir", str(mini_dir), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert (out / "manifest.json").exists()
    assert load_dataset(out).users == load_dataset("opinionqa-groups", data_dir=mini_dir, cache=False).users
    split_file = tmp_path / "split.json"
    res = runner.invoke(app, ["data", "split", str(out), "--k", "1", "--seed", "3", "--out", str(split_file)])
    assert res.exit_code == 0, res.output
    rec = json.loads(split_file.read_text())
    assert rec["params"]["k"] == 1 and rec["params"]["seed"] == 3
    assert {u["user_id"] for u in rec["users"]} | set(rec["skipped"]) == {
        u.id for u in load_dataset(out).users
    }
    assert all(len(u["train"]) == 1 and len(u["test"]) >= 1 for u in rec["users"])
    again = tmp_path / "again.json"
    runner.invoke(app, ["data", "split", str(out), "--k", "1", "--seed", "3", "--out", str(again)])
    assert again.read_text() == split_file.read_text()


def test_loader_options_via_cli(mini_dir, tmp_path):
    res = runner.invoke(
        app,
        [
            "data",
            "convert",
            "globalopinionqa",
            "--data-dir",
            str(mini_dir),
            "-o",
            "min_questions=2",
            "--out",
            str(tmp_path / "g"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert [u.id for u in load_dataset(tmp_path / "g").users] == ["France", "Peru"]


def test_stats_on_mini_users(mini_dir):
    s = userbase_stats(load_dataset("opinionqa-users", data_dir=mini_dir, cache=False))
    assert (s.users, s.questions, s.opinions, s.questions_answered) == (3, 3, 8, 3)
    assert s.opinions_per_user == (2, 3, 8 / 3, 3)
    assert s.profile_attributes == {"Political party": 3, "Age": 1}
    assert s.profile_complete == 1 and s.refused == 1
    assert s.choice_position == {0: 3 / 8, 1: 4 / 8, 2: 1 / 8}
    # majority share: q1 answers [0,1,1] -> 2, q2 [2,0,1] -> 1, q3 [1,0] -> 1
    assert s.majority_share == 4 / 8
    assert s.chance_accuracy == 1 / 3
