"""pool_stats: summaries of saved Fermi states (origins of the best prompt, train gain, counters)."""

from __future__ import annotations

import json

import pytest

from personalign.fermi.memory import ScoredPrompt
from personalign.fermi.pool_stats import markdown, method_pool_stats, run_pool_stats
from personalign.fermi.prompts import PromptSpec


def _prompt(origin: str, acc: float, soft: float = -1.0) -> dict:
    spec = PromptSpec(text=origin, origin=origin)
    return ScoredPrompt(spec, acc, soft, (), (), (), (), birth=0, round=0).to_dict()


def _state(prompts: list[dict], stop: str = "rounds", **counters: object) -> dict:
    return {"archive": prompts, "stop_reason": stop, "counters": counters}


STATES = [
    _state(
        [_prompt("seed:profile", 0.4), _prompt("optimizer", 0.6)],
        optimizer_calls=4,
        rejected={"duplicate": 2},
    ),
    _state([_prompt("seed:profile", 0.5, -0.5), _prompt("ext:opinions", 0.5, -0.9)], stop="patience"),
]


def test_method_pool_stats_counts_origins_gains_and_counters():
    s = method_pool_stats(STATES)
    assert s["users"] == 2
    assert s["best_origin"] == {"optimizer": 1, "seed": 1}  # the tie goes to the higher soft score
    assert s["train_acc_best_seed"] == pytest.approx(0.45)
    assert s["train_acc_best"] == pytest.approx(0.55)
    assert s["train_gain"] == pytest.approx(0.1)
    assert s["users_with_gain"] == 1
    assert s["stop_reason"] == {"rounds": 1, "patience": 1}
    assert s["per_user"] == {"optimizer_calls": 2.0, "rejected.duplicate": 1.0}


def test_run_pool_stats_reads_only_method_folders_with_states(tmp_path):
    for i, state in enumerate(STATES):
        folder = tmp_path / "fermi" / f"u{i}" / "state" / f"u{i}"
        folder.mkdir(parents=True)
        (folder / "state.json").write_text(json.dumps(state))
    (tmp_path / "zero-shot" / "u0" / "state").mkdir(parents=True)
    stats = run_pool_stats(tmp_path)
    assert list(stats) == ["fermi"]
    assert stats["fermi"]["users"] == 2
    table = markdown(stats)
    assert "| fermi | 2 | 1 / 1 / 0 | 45.0 → 55.0 % | 1 |" in table


def test_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an evaluation output folder"):
        run_pool_stats(tmp_path / "missing")
    with pytest.raises(ValueError, match="no Fermi states"):
        method_pool_stats([])
