"""Best-of-N: scoring only the prompts an earlier run already generated."""

from __future__ import annotations

import json

import pytest

from personalign.np.best_of_n import BestOfNConfig, _NoLM, generate_candidates, read_generations


def test_scoring_existing_generations_needs_no_lm(tmp_path):
    path = tmp_path / "generations.jsonl"
    assert set(read_generations(path)) == set()
    rec = {"id": "p1", "source": "helpful", "prompt": "\n\nHuman: hi\n\nAssistant:", "responses": ["a", "b"]}
    path.write_text(json.dumps(rec) + "\n")
    assert set(read_generations(path)) == {"p1"}
    cfg = BestOfNConfig(n_max=2, generate_missing=False)
    prompt = {k: rec[k] for k in ("id", "source", "prompt")}
    assert generate_candidates(_NoLM(), [prompt], cfg, path) == [rec]
    with pytest.raises(RuntimeError, match="no generations"):
        generate_candidates(_NoLM(), [{**prompt, "id": "p2"}], cfg, path)
