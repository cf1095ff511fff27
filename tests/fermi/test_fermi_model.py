"""End to end with the real bundled ``smollm2-135m`` on two real OpinionQA respondents (offline;
fails loudly if the model or the shared data is missing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalign.data.datasets import load_dataset
from personalign.data.split import split_user
from personalign.embed.hashing import HashingEmbedder
from personalign.fermi import FermiConfig, FermiPersonalizer
from personalign.lm.transformers import TransformersLM

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def smollm() -> TransformersLM:
    return TransformersLM("smollm2-135m", batch_size=8)


def test_fermi_end_to_end_on_two_real_users(smollm, data_dir: Path, tmp_path):
    ub = load_dataset("opinionqa-users", data_dir)
    users = [u for u in ub.users if u.meta.get("profile_complete")][:2] or list(ub.users[:2])
    # one optimizer call per user: CPU generation is the slow part
    cfg = FermiConfig.named("small_model", T=2, K=1, retries=0, max_new_tokens=32)
    for user in users:
        # a short training set keeps this test to about a minute on 2 CPU cores
        split = split_user(user, ub.questions, k=6, seed=0, dataset=ub.name, max_test=3)
        model = FermiPersonalizer(smollm, smollm, HashingEmbedder(), cfg, workdir=tmp_path)
        model.fit(split.for_training())
        assert 1 <= len(model.pool_) <= cfg.L
        assert all(len(row) == 6 for row in model.C_)
        seeds = [sp for sp in model.state_.archive if sp.origin.startswith("seed")]
        assert model.pool_[0].acc >= max(s.acc for s in seeds)  # the pool never falls below a seed
        preds = model.predict(split.test_questions)
        assert len(preds) == len(split.test)
        for p, q in zip(preds, split.test_questions, strict=True):
            assert p.pred is not None and 0 <= p.pred < len(q.options)
            assert p.info["prompt"] in {sp.text for sp in model.pool_}
        log = (tmp_path / user.id / "rounds.jsonl").read_text().splitlines()
        assert len(log) == 2 and json.loads(log[1])["meta_prompt"].startswith("Task:")
        # the saved state answers identically without re-optimizing
        path = model.save(tmp_path / f"{user.id}.json")
        again = FermiPersonalizer.load(path, smollm, HashingEmbedder()).predict(split.test_questions)
        assert [p.pred for p in again] == [p.pred for p in preds]
