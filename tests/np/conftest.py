"""Fixtures shared by the NP-BTL tests: small models and the synthetic source."""

from __future__ import annotations

import pytest
import torch

from personalign.np.config import NPModelConfig
from personalign.np.episodes import PoolEpisodeSource
from personalign.np.synthetic import synthetic_source, synthetic_training_config
from personalign.np.trainer import NPTrainer

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synth() -> PoolEpisodeSource:
    """The full synthetic task (20,000 pairs, 80/10/10)."""
    return synthetic_source()


@pytest.fixture(scope="session")
def small_synth() -> PoolEpisodeSource:
    """A 2,000-pair synthetic task for fast training tests."""
    return synthetic_source(num_pairs=2000)


def tiny_config(kind: str = "np-btl", **kw) -> NPModelConfig:
    base = {"kind": kind, "feature_dim": 1, "hidden": 32, "num_heads": 4, "pair_encoder_layers": 2}
    base.update(kw)
    return NPModelConfig(**base)


def short_synthetic_fit(model, source: PoolEpisodeSource) -> None:
    """The CI-sized synthetic training run: 200 steps of 32 episodes, lr 3e-3, no validation."""
    cfg = synthetic_training_config(
        lr=3e-3,
        max_steps=200,
        epochs=1,
        episodes_per_epoch=6400,
        batch_episodes=32,
        warmup_steps=10,
        eval_every=0,
        seed=0,
        device="cpu",
    )
    NPTrainer(model, cfg).fit(source)
