"""aggregate_seeds: the text benchmark's per-seed results combined with a Student-t interval."""

from __future__ import annotations

import pytest

from personalign.np.text_bench import aggregate_seeds, markdown_table


def _doc(seed: int, np_acc: float, oracle: float, btl: float, length_feature: bool = False) -> dict:
    def cell(v: float) -> dict:
        return {str(m): {"mean": v, "ci": [v, v], "n": 300} for m in (0, 10)}

    return {
        "task": "length",
        "note": "simulated users",
        "types": ["concise"],
        "context_sizes": [0, 10],
        "embedder": "hashing",
        "length_feature": length_feature,
        "counts": {"test": {"pairs": 10}},
        "identical_fraction": 0.0,
        "config": {"seed": seed},
        "accuracy": {
            "btl": {"concise": cell(btl)},
            "np-btl": {"concise": cell(np_acc)},
            "oracle:concise": {"concise": cell(oracle)},
        },
        "train_seconds": {"btl": 1.0, "np-btl": 2.0, "oracle:concise": 3.0},
        "bar": {},
    }


def test_seed_means_intervals_and_bar():
    agg = aggregate_seeds([_doc(0, 0.80, 0.84, 0.5), _doc(1, 0.84, 0.84, 0.5), _doc(2, 0.82, 0.84, 0.5)])
    cell = agg["accuracy"]["np-btl"]["concise"]["10"]
    assert cell["mean"] == pytest.approx(0.82)
    lo, hi = cell["ci"]
    assert lo == pytest.approx(0.82 - 4.303 * 0.02 / 3**0.5, abs=1e-3) and hi > 0.82  # t(0.975, 2) = 4.303
    assert agg["seeds"] == [0, 1, 2]
    assert agg["bar"]["concise"]["within_3pts_of_oracle"] and agg["bar"]["concise"]["above_btl"]
    assert set(agg["bar_per_seed"]) == {"0", "1", "2"}
    assert "Training seeds [0, 1, 2]" in markdown_table(agg)


def test_refuses_mixed_settings_and_empty_input():
    with pytest.raises(ValueError, match="cannot be aggregated"):
        aggregate_seeds([_doc(0, 0.8, 0.8, 0.5), _doc(1, 0.8, 0.8, 0.5, length_feature=True)])
    with pytest.raises(ValueError, match="no per-seed"):
        aggregate_seeds([])


def test_source_breakdown_is_averaged_and_rendered_and_a_missing_oracle_is_not_a_failure():
    docs = []
    for seed, harmless in ((0, 0.4), (1, 0.6)):
        d = _doc(seed, 0.8, 0.84, 0.5)
        d["by_source"] = {
            name: {
                "0": {"concise": {"harmless": harmless, "uf": 0.5}},
                "10": {"concise": {"harmless": 0.9, "uf": 0.5}},
            }
            for name in ("btl", "np-btl", "oracle:concise")
        }
        docs.append(d)
    agg = aggregate_seeds(docs)
    assert agg["by_source"]["np-btl"]["0"]["concise"]["harmless"] == pytest.approx(0.5)
    md = markdown_table(agg)
    assert "| np-btl | 50.0 → 90.0 | 50.0 |" in md
    no_oracle = _doc(0, 0.8, 0.84, 0.5)
    del no_oracle["accuracy"]["oracle:concise"]
    no_oracle["bar"] = aggregate_seeds([no_oracle])["bar"]
    row = next(line for line in markdown_table(no_oracle).splitlines() if line.startswith("| concise | 50.0"))
    assert "**no**" not in row and "| – |" in row
