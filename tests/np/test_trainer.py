"""Episodic meta-training: a short run beats the unconditional ceiling; resume is bit-identical;
DataLoader workers do not change results; early stopping; checkpoints are safetensors + JSON."""

import json
from dataclasses import replace

import pytest
import torch

from personalign.np.config import NPModelConfig, NPTrainingConfig
from personalign.np.evaluate import evaluate_grid
from personalign.np.models import build_model
from personalign.np.trainer import NPTrainer

from .conftest import short_synthetic_fit, tiny_config

TINY = NPTrainingConfig(
    lr=1e-3,
    batch_episodes=8,
    num_targets=6,
    max_context=4,
    epochs=2,
    episodes_per_epoch=80,
    eval_every=3,
    val_episodes=16,
    patience=0,
    seed=11,
    num_threads=1,
    device="cpu",
)


def _params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_short_synthetic_run_beats_the_unconditional_ceiling(synth):
    """200 steps of a 64-wide NP-BTL (≈ 20 s on a loaded 2-core machine) must reach ≥ 90 % at m = 5
    and ≥ 95 % at m = 10 (no unconditional model can exceed 75 %)."""
    model = build_model(NPModelConfig(feature_dim=1, hidden=64, num_heads=4), seed=0)
    short_synthetic_fit(model, synth)
    grid = evaluate_grid(model, synth, context_sizes=(0, 5, 10), episodes=200)
    assert grid.average[5].mean >= 0.90
    assert grid.average[10].mean >= 0.95
    assert grid.average[0].mean <= 0.80  # m = 0 cannot beat the population ceiling by much


@pytest.mark.parametrize("latent", [False, True])
def test_resume_is_bit_identical(small_synth, tmp_path, latent):
    """N steps + N resumed steps == 2N steps (mid-epoch resume, crossing an epoch boundary; the latent
    variant also draws z samples from the global RNG)."""
    full = build_model(tiny_config(latent=latent), seed=0)
    NPTrainer(full, replace(TINY, max_steps=12, keep_best=False)).fit(small_synth)

    ckpt = str(tmp_path / "ckpt")
    first = build_model(tiny_config(latent=latent), seed=0)
    NPTrainer(first, replace(TINY, max_steps=6, keep_best=False, checkpoint_dir=ckpt, ckpt_every=100)).fit(
        small_synth
    )
    assert not _same(_params(first), _params(full))
    torch.manual_seed(12345)  # resuming must restore every RNG state itself
    resumed = build_model(tiny_config(latent=latent), seed=99)  # weights come from the checkpoint
    tr = NPTrainer(resumed, replace(TINY, max_steps=12, keep_best=False, checkpoint_dir=ckpt)).fit(
        small_synth, resume=True
    )
    assert tr.step_ == 12
    assert _same(_params(resumed), _params(full))
    assert [h["step"] for h in tr.history_] == [3, 6, 9, 12]
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["best.safetensors", "last.json", "last.safetensors"]
    state = json.loads((tmp_path / "ckpt" / "last.json").read_text())["state"]
    assert state["step"] == 12 and state["config"]["max_steps"] == 12


def test_dataloader_workers_do_not_change_results(small_synth):
    results = []
    for workers in (0, 2):
        model = build_model(tiny_config(), seed=0)
        NPTrainer(model, replace(TINY, max_steps=5, num_workers=workers, eval_every=0)).fit(small_synth)
        results.append(_params(model))
    assert _same(*results)


def test_seed_changes_results(small_synth):
    a, b = build_model(tiny_config(), seed=0), build_model(tiny_config(), seed=0)
    NPTrainer(a, replace(TINY, max_steps=3, eval_every=0, seed=1)).fit(small_synth)
    NPTrainer(b, replace(TINY, max_steps=3, eval_every=0, seed=2)).fit(small_synth)
    assert not _same(_params(a), _params(b))


def test_early_stopping_and_best_weights(small_synth):
    model = build_model(tiny_config(), seed=0)
    tr = NPTrainer(model, replace(TINY, lr=0.0, weight_decay=0.0, patience=2, eval_every=2)).fit(small_synth)
    # lr = 0: the first validation is the best, the next two do not improve -> stop at step 6
    assert tr.stopped_early_ and tr.step_ == 6 and tr.best_step_ == 2


def test_oracle_config_trains_on_one_type(small_synth):
    model = build_model(tiny_config("btl"), seed=0)
    tr = NPTrainer(model, replace(TINY, max_steps=2, type_indices=(1,), eval_every=1)).fit(small_synth)
    assert tr.step_ == 2 and len(tr.history_) == 2


def test_feature_dimension_mismatch_is_reported(small_synth):
    model = build_model(tiny_config(feature_dim=3), seed=0)
    with pytest.raises(ValueError, match="1-d features but the model expects 3"):
        NPTrainer(model, TINY).fit(small_synth)


def test_context_larger_than_the_targets_is_refused_up_front():
    with pytest.raises(ValueError, match="max_context=40 > num_targets=20"):
        NPTrainingConfig(num_targets=20, max_context=40)
    assert NPTrainingConfig(num_targets=20, max_context=40, disjoint_train_context=True).max_context == 40
