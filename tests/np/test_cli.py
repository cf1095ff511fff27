"""`personalign np` commands end to end on the synthetic task (tiny budgets)."""

import json

import pytest
from typer.testing import CliRunner

from personalign.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("np") / "run"
    res = runner.invoke(
        app,
        [
            "np",
            "train",
            "--task",
            "synthetic",
            "--out",
            str(out),
            "--max-steps",
            "4",
            "--no-eval",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_run_folder(run_dir):
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "model.json", "model.safetensors", "history.json", "checkpoints"} <= names
    meta = json.loads((run_dir / "model.json").read_text())
    assert meta["metadata"]["task"] == "synthetic" and meta["metadata"]["steps"] == 4
    assert not list(run_dir.rglob("*.pt")) and not list(run_dir.rglob("*.pkl"))


def test_eval_writes_metrics(run_dir):
    res = runner.invoke(app, ["np", "eval", str(run_dir), "--episodes", "10", "--context-sizes", "0,2"])
    assert res.exit_code == 0, res.output
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["context_sizes"] == [0, 2] and set(m["per_type"]) == {"type0-increasing", "type1-tent"}
    cell = m["per_type"]["type1-tent"]["2"]
    assert 0 <= cell["mean"] <= 1 and cell["n"] == 10 and cell["ci95"][0] <= cell["mean"] <= cell["ci95"][1]
    assert m["bayes"]["2"] == pytest.approx(1 - 0.25 / 4)
    assert (run_dir / "acc_vs_context.png").stat().st_size > 1000
    assert "| **average** |" in (run_dir / "metrics.md").read_text()
    res = runner.invoke(
        app, ["np", "eval", str(run_dir), "--episodes", "5", "--context-sizes", "0", "--diagnostics"]
    )
    assert res.exit_code == 0, res.output
    mixed = json.loads((run_dir / "metrics.json").read_text())["diagnostics"]["mixed_context"]
    assert set(mixed["type1-tent"]) == {"0", "0.25", "0.5", "0.75", "1", "m=0"}


def test_score_numeric_pairs(run_dir, tmp_path):
    ctx = tmp_path / "ctx.jsonl"
    ctx.write_text('{"chosen": [0.9], "rejected": [0.6]}\n{"chosen": 0.7, "rejected": 0.55}\n')
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"id": "p1", "a": [0.95], "b": [0.52]}\n{"a": [0.1], "b": [0.2]}\n')
    out = tmp_path / "scores.jsonl"
    res = runner.invoke(
        app,
        [
            "np",
            "score",
            "--model",
            str(run_dir),
            "--context",
            str(ctx),
            "--pairs",
            str(pairs),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["p1", 1]
    assert all(0 <= r["p_a_over_b"] <= 1 and r["prefers"] in "ab" for r in rows)


def test_score_reports_bad_lines(run_dir, tmp_path):
    ctx = tmp_path / "ctx.jsonl"
    ctx.write_text('{"chosen": [0.9], "rejected": [0.6]}\n{"chosen": [0.9, 0.1], "rejected": [0.6]}\n')
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"a": [0.95], "b": [0.52]}\n')
    res = runner.invoke(
        app, ["np", "score", "--model", str(run_dir), "--context", str(ctx), "--pairs", str(pairs)]
    )
    assert res.exit_code == 2
    assert "ctx.jsonl:2" in res.output and "'chosen'" in res.output and "1 numbers" in res.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    res = runner.invoke(
        app, ["np", "score", "--model", str(run_dir), "--context", str(empty), "--pairs", str(empty)]
    )
    assert res.exit_code == 2 and "no pairs" in res.output
    nan = tmp_path / "nan.jsonl"
    nan.write_text('{"a": [NaN], "b": [0.5]}\n')
    res = runner.invoke(
        app, ["np", "score", "--model", str(run_dir), "--context", str(empty), "--pairs", str(nan)]
    )
    assert res.exit_code == 2 and "NaN" in res.output


def test_unknown_task_and_bench_list_available(tmp_path):
    res = runner.invoke(app, ["np", "train", "--task", "nope", "--out", str(tmp_path / "x")])
    assert (
        res.exit_code == 2
        and "unknown np task 'nope'; available: " in res.output
        and "synthetic" in res.output
    )
    res = runner.invoke(app, ["np", "bench", "nope", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "available:" in res.output and "synthetic" in res.output
    res = runner.invoke(app, ["np", "bench", "text", "--task", "nope", "--out", str(tmp_path / "z")])
    assert res.exit_code == 2 and "unknown text task 'nope'; available:" in res.output
    assert "style4" in res.output and not (tmp_path / "z").exists()
    res = runner.invoke(app, ["np", "bench", "synthetic", "--task", "mix4", "--out", str(tmp_path / "w")])
    assert res.exit_code == 2 and "text benchmark only" in res.output


def test_bench_synthetic_quick_writes_exact_shape(tmp_path):
    out = tmp_path / "bench"
    res = runner.invoke(
        app, ["np", "bench", "synthetic", "--quick", "--seeds", "0", "--episodes", "10", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "synthetic.json").read_text())
    assert set(data) == {"bayes", "accuracy", "train_seconds"}
    keys = ["0", "1", "3", "5", "10"]
    assert list(data["bayes"]) == keys and data["bayes"]["0"] == 0.75
    assert set(data["accuracy"]) == {"btl", "np-btl"}
    for model in ("btl", "np-btl"):
        assert list(data["accuracy"][model]) == keys
        for cell in data["accuracy"][model].values():
            assert set(cell) == {"mean", "ci"} and len(cell["ci"]) == 2 and 0 <= cell["mean"] <= 1
    assert data["train_seconds"] > 0
    assert {"synthetic.md", "synthetic.png", "synthetic_details.json"} <= {p.name for p in out.iterdir()}


def test_help_on_every_command():
    for cmd in (
        ["np", "--help"],
        ["np", "train", "--help"],
        ["np", "eval", "--help"],
        ["np", "bench", "--help"],
        ["np", "score", "--help"],
    ):
        res = runner.invoke(app, cmd)
        assert res.exit_code == 0 and "Usage" in res.output


def test_train_latent_variant_and_resume(tmp_path):
    out = tmp_path / "latent"
    args = [
        "np",
        "train",
        "--task",
        "synthetic",
        "--out",
        str(out),
        "--latent",
        "--beta-kl",
        "0.1",
        "--no-eval",
    ]
    args += ["--threads", "1", "--val-episodes", "16"]
    res = runner.invoke(app, [*args, "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    config = json.loads((out / "model.json").read_text())["config"]
    assert config["latent"] is True and config["beta_kl"] == 0.1
    res = runner.invoke(app, [*args, "--max-steps", "3", "--resume"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "model.json").read_text())["metadata"]["steps"] == 3


def test_mixture_model_trains_evaluates_and_scores(tmp_path):
    out = tmp_path / "mix"
    args = ["np", "train", "--task", "synthetic", "--model", "mixture-btl", "--out", str(out)]
    res = runner.invoke(
        app, [*args, "--max-steps", "30", "--val-episodes", "32", "--no-eval", "--threads", "1"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads((out / "model.json").read_text())["config"]["kind"] == "mixture-btl"
    res = runner.invoke(app, ["np", "eval", str(out), "--episodes", "50", "--context-sizes", "0,5"])
    assert res.exit_code == 0, res.output
    acc = json.loads((out / "metrics.json").read_text())["average"]
    assert acc["5"]["mean"] > acc["0"]["mean"] + 0.1  # the context identifies the user type
    (tmp_path / "ctx.jsonl").write_text('{"chosen": [0.9], "rejected": [0.6]}\n')
    (tmp_path / "pairs.jsonl").write_text('{"id": "p1", "a": [0.95], "b": [0.52]}\n')
    res = runner.invoke(
        app,
        [
            "np",
            "score",
            "--model",
            str(out),
            "--context",
            str(tmp_path / "ctx.jsonl"),
            "--pairs",
            str(tmp_path / "pairs.jsonl"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert '"prefers": "a"' in res.output
