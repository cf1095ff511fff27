"""Integration: the runner with the real bundled smollm2-135m on two real OpinionQA respondents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalign.eval.runner import evaluate, pair_dir


@pytest.mark.model
def test_smollm2_two_real_users_end_to_end(tmp_path: Path, data_dir: Path) -> None:
    methods = ["zero-shot", "profile", "fermi", "group-majority"]
    res = evaluate(
        "opinionqa-users",
        methods,
        users=2,
        max_test=4,
        model="smollm2-135m",
        embedder="hashing",
        out=tmp_path / "run",
        data_dir=data_dir,
        # small-model mode with a short reply keeps generation (the slow part on CPU) bounded
        method_options={"config": "small_model", "T": 2, "K": 1, "max_new_tokens": 32, "retries": 0},
        cache=str(tmp_path / "calls.sqlite"),
        progress=False,
    )
    s = res.summary
    assert s["n_users"] == 2 and res.ran == 8
    for m in methods:
        assert s["methods"][m]["n_users"] == 2
        for u in s["users"]:
            preds = [
                json.loads(x)
                for x in (pair_dir(res.out, m, u) / "predictions.jsonl").read_text().splitlines()
            ]
            assert len(preds) == 4
            if m != "group-majority":
                assert all(p["pred"] is not None for p in preds)
                assert all(p["info"]["letter_mass"] > 0.3 for p in preds)  # the model answers with letters
    fermi = s["methods"]["fermi"]
    assert fermi["cost_per_user"]["answer_calls"] >= 15 * 2 + 4  # seeds scored on 15 items + 4 answers
    assert fermi["cost_per_user"]["optimizer_calls"] >= 1
    assert fermi["diagnostics"]["letter_mass"] is not None
    # the state Fermi saved for resuming lives under the pair's folder
    assert list((pair_dir(res.out, "fermi", s["users"][0]) / "state").rglob("state.json"))
    assert (res.out / "report.md").is_file() and (res.out / "accuracy.png").is_file()
