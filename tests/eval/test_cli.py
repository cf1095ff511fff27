"""`personalign eval` and `personalign demo` through the CLI (simulated LM; no model files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personalign.cli.app import app
from personalign.cli.eval import parse_options, parse_users

runner = CliRunner()


def test_parse_users_and_options() -> None:
    assert parse_users("30") == 30
    assert parse_users("53, 71") == ["53", "71"]
    assert parse_users(None) is None
    assert parse_options("small_model", 3, None, None, ["k=7", "name=abc", 'seeds=["profile"]']) == {
        "config": "small_model",
        "T": 3,
        "k": 7,
        "name": "abc",
        "seeds": ["profile"],
    }


def test_eval_command_writes_report(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONALIGN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "run"
    args = ["eval", "--dataset", "opinionqa-users", "--methods", "zero-shot,profile,few-shot", "--users", "2"]
    args += ["--model", "simulated", "--embedder", "hashing", "--out", str(out), "--data-dir", str(data_dir)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "report:" in res.output and "zero-shot" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_users"] == 2 and set(summary["methods"]) == {"zero-shot", "profile", "few-shot"}
    assert (out / "report.md").is_file() and (out / "accuracy.png").is_file()
    # the report can be rebuilt from the files alone
    (out / "report.md").unlink()
    res = runner.invoke(app, [*args, "--report-only"])
    assert res.exit_code == 0, res.output
    assert "| few-shot" in (out / "report.md").read_text()


def test_eval_command_bad_method_is_a_clear_error(tmp_path: Path) -> None:
    res = runner.invoke(
        app,
        ["eval", "--dataset", "opinionqa-users", "--methods", "zero-shot,nope", "--out", str(tmp_path / "x")],
    )
    assert res.exit_code == 2
    assert "unknown method 'nope'" in res.output and "available:" in res.output


def test_demo_without_data_says_how_to_supply_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONALIGN_DATA_DIR", str(tmp_path / "missing"))
    res = runner.invoke(app, ["demo", "--quick", "--out", str(tmp_path / "demo")])
    assert res.exit_code == 2
    assert "--data-dir" in res.output and "PERSONALIGN_DATA_DIR" in res.output
