"""The evaluation runner end to end with the simulated LM on real OpinionQA respondents:
artefacts, resume, worker-count independence, the report, and what methods get to see."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import pytest

from personalign.eval.runner import RunConfigMismatch, evaluate, pair_dir
from personalign.registry import UnknownNameError

SIM = {"model": "simulated", "embedder": "hashing"}
OPTS = {"T": 2, "K": 2}
METHODS = ["zero-shot", "profile", "fermi", "group-majority"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONALIGN_CACHE", str(tmp_path_factory.mktemp("cache")))


def _predictions(out: Path, methods: list[str], users: list[str]) -> dict[tuple[str, str], list[dict]]:
    res = {}
    for m in methods:
        for u in users:
            lines = (pair_dir(out, m, u) / "predictions.jsonl").read_text().splitlines()
            res[(m, u)] = [
                {k: r[k] for k in ("question_id", "pred", "gold", "probs", "info")}
                for r in map(json.loads, lines)
            ]
    return res


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    mp = pytest.MonkeyPatch()
    mp.setenv("PERSONALIGN_CACHE", str(tmp_path_factory.mktemp("cache-first")))
    out = tmp_path_factory.mktemp("run1")
    res = evaluate(
        "opinionqa-users",
        METHODS,
        users=3,
        out=out,
        data_dir=data_dir,
        method_options=OPTS,
        progress=False,
        **SIM,
    )
    mp.undo()
    return res


def test_end_to_end_artefacts_parse(first_run) -> None:
    out, summary = first_run.out, first_run.summary
    assert first_run.ran == 12 and first_run.skipped == 0
    users = summary["users"]
    assert len(users) == 3
    for m in METHODS:
        for u in users:
            d = pair_dir(out, m, u)
            result = json.loads((d / "result.json").read_text())
            preds = [json.loads(line) for line in (d / "predictions.jsonl").read_text().splitlines()]
            assert len(preds) == result["n_test"] >= 16  # 31–48 answers, 15 train
            assert result["n_train"] == 15
            assert result["n_correct"] == sum(p["correct"] for p in preds)
            assert result["accuracy"] == pytest.approx(result["n_correct"] / result["n_test"])
            for p in preds:
                assert p["correct"] == (p["pred"] == p["gold"])
                if p["pred"] is not None:
                    assert sum(p["probs"]) == pytest.approx(1.0, abs=1e-6)
    # cost: Fermi calls the optimizer, zero-shot only answers, group-majority calls no LM
    fermi_cost = summary["methods"]["fermi"]["cost_per_user"]
    assert fermi_cost["optimizer_calls"] > 0 and fermi_cost["answer_calls"] > 0
    assert summary["methods"]["zero-shot"]["cost_per_user"]["optimizer_calls"] == 0
    assert summary["methods"]["group-majority"]["cost_per_user"]["answer_calls"] == 0
    # stats and labels
    assert set(summary["paired"]) == {"zero-shot", "profile", "group-majority"}
    acc = summary["methods"]["zero-shot"]["accuracy"]
    assert acc["low"] <= acc["mean"] <= acc["high"] and acc["n"] == 3
    assert summary["methods"]["group-majority"]["uses_other_users_data"] is True
    assert summary["coverage"] is not None and 0 < summary["coverage"]["fraction"] <= 1


def test_report_written(first_run) -> None:
    out = first_run.out
    md = (out / "report.md").read_text()
    for m in METHODS:
        assert f"| {m}" in md
    assert "other people's aggregate" in md
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "summary.json").read_text())["n_users"] == 3


def test_resume_skips_finished_and_matches(first_run, tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(first_run.out, out)
    users = first_run.summary["users"]
    # simulate a crash: one pair never finished, another was written but not marked done
    shutil.rmtree(pair_dir(out, "fermi", users[1]))
    (pair_dir(out, "profile", users[2]) / "result.json").unlink()
    res = evaluate(
        "opinionqa-users",
        METHODS,
        users=3,
        out=out,
        data_dir=data_dir,
        method_options=OPTS,
        progress=False,
        **SIM,
    )
    assert (res.ran, res.skipped) == (2, 10)
    assert _predictions(out, METHODS, users) == _predictions(first_run.out, METHODS, users)
    assert (
        res.summary["methods"]["fermi"]["per_user_accuracy"]
        == first_run.summary["methods"]["fermi"]["per_user_accuracy"]
    )
    # nothing left to do: a third run runs nothing
    again = evaluate(
        "opinionqa-users",
        METHODS,
        users=3,
        out=out,
        data_dir=data_dir,
        method_options=OPTS,
        progress=False,
        **SIM,
    )
    assert (again.ran, again.skipped) == (0, 12)


def test_two_workers_match_one(first_run, tmp_path: Path, data_dir: Path) -> None:
    res = evaluate(
        "opinionqa-users",
        METHODS,
        users=3,
        out=tmp_path / "w2",
        data_dir=data_dir,
        method_options=OPTS,
        workers=2,
        progress=False,
        **SIM,
    )
    users = first_run.summary["users"]
    assert res.summary["users"] == users
    assert _predictions(res.out, METHODS, users) == _predictions(first_run.out, METHODS, users)
    for m in METHODS:
        assert res.summary["methods"][m]["accuracy"] == first_run.summary["methods"][m]["accuracy"]


def test_config_mismatch_refused(first_run, tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "mismatch"
    shutil.copytree(first_run.out, out)
    with pytest.raises(RunConfigMismatch, match="another configuration"):
        evaluate(
            "opinionqa-users", METHODS, users=3, train_k=10, out=out, data_dir=data_dir, progress=False, **SIM
        )


def test_unknown_method_lists_available(tmp_path: Path) -> None:
    with pytest.raises(UnknownNameError, match=r"available: .*fermi"):
        evaluate("opinionqa-users", ["fermi", "no-such-method"], users=1, out=tmp_path, progress=False, **SIM)


class _Spy:
    """Records what the runner hands a method."""

    seen: ClassVar[list[dict]] = []

    def __init__(self, ctx) -> None:
        self.ctx = ctx

    def fit(self, split):
        _Spy.seen.append({"reference": self.ctx.reference, "test": split.test, "user": split.user_id})
        return self

    def predict(self, questions):
        from personalign.methods.base import Prediction

        _Spy.seen[-1]["asked"] = [q.id for q in questions]
        return [Prediction(q.id, 0, tuple(1.0 / len(q.options) for _ in q.options)) for q in questions]


def test_methods_see_one_user_without_test_answers(tmp_path: Path, data_dir: Path) -> None:
    from personalign.methods.registry import METHODS

    if "test-eval-spy" not in METHODS:
        METHODS.register("test-eval-spy", _Spy)
    _Spy.seen.clear()
    res = evaluate(
        "opinionqa-users", ["test-eval-spy"], users=2, out=tmp_path, data_dir=data_dir, progress=False, **SIM
    )
    assert len(_Spy.seen) == 2
    for seen, user in zip(_Spy.seen, res.summary["users"], strict=True):
        assert seen["user"] == user
        assert seen["reference"] is None  # only group-majority gets population aggregates
        assert seen["test"] == ()  # fit never sees the held-out items
        preds = (pair_dir(tmp_path, "test-eval-spy", user) / "predictions.jsonl").read_text().splitlines()
        assert [json.loads(p)["question_id"] for p in preds] == seen["asked"]
