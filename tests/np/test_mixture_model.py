"""mixture-btl: K BT heads and a discrete latent user type whose posterior comes from Bayes' rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personalign.np.config import NPModelConfig
from personalign.np.episodes import Episode, collate
from personalign.np.evaluate import evaluate_grid
from personalign.np.models import MixtureBTLRewardModel, build_model, load_model

from .conftest import short_synthetic_fit, tiny_config


def _model(k: int = 3) -> MixtureBTLRewardModel:
    m = build_model(tiny_config("mixture-btl", num_components=k), seed=0)
    assert isinstance(m, MixtureBTLRewardModel)
    return m.eval()


def _pairs(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 2, 1)).astype(np.float32)


def test_posterior_is_bayes_rule_over_the_heads():
    m = _model()
    ctx = torch.from_numpy(_pairs(5, 0))
    with torch.no_grad():
        post = m.encode(ctx[None], torch.ones(1, 5, dtype=torch.bool))[0]
        r = m.component_rewards(ctx.reshape(10, 1)).reshape(5, 2, 3)
        ll = torch.nn.functional.logsigmoid(r[:, 0] - r[:, 1]).sum(0)
        empty = m.encode(torch.zeros(1, 0, 2, 1), torch.zeros(1, 0, dtype=torch.bool))[0]
        shuffled = m.encode(ctx[torch.randperm(5)][None], torch.ones(1, 5, dtype=torch.bool))[0]
    torch.testing.assert_close(post, torch.softmax(ll, 0))
    torch.testing.assert_close(empty, torch.full((3,), 1 / 3))
    torch.testing.assert_close(shuffled, post)


def test_padding_and_state_match_the_batched_predictions():
    m = _model()
    episodes = [
        Episode(_pairs(k, k), _pairs(4, 10 + k), 0, np.arange(k), np.arange(k, k + 4)) for k in (0, 2, 5)
    ]
    with torch.no_grad():
        padded = m.target_probabilities(collate(episodes)).numpy().reshape(3, 4)
        alone = [m.target_probabilities(collate([e])).numpy() for e in episodes]
    for i, e in enumerate(episodes):
        np.testing.assert_allclose(padded[i], alone[i], rtol=1e-5, atol=1e-6)
        state = m.condition(e.context)
        p = state.preference_probability(e.targets[:, 0], e.targets[:, 1])
        np.testing.assert_allclose(p, alone[i], rtol=1e-5, atol=1e-6)
        comp = m.component_rewards(torch.from_numpy(e.targets[:, 0])).detach().numpy()
        np.testing.assert_allclose(state.reward(e.targets[:, 0]), comp @ state.weights.numpy(), rtol=1e-5)


def test_a_user_state_depends_on_that_users_pairs_only(tmp_path):
    m = _model()
    alice, bob = _pairs(4, 1), _pairs(4, 2)
    before = m.condition(alice).weights.clone()
    m.condition(bob)
    assert torch.equal(m.condition(alice).weights, before)
    m.save(tmp_path / "mix")
    loaded, _ = load_model(tmp_path / "mix")
    torch.testing.assert_close(loaded.condition(alice).weights, before)


def test_config_rejects_no_components():
    with pytest.raises(ValueError, match="num_components must be >= 1"):
        NPModelConfig(kind="mixture-btl", num_components=0)


@pytest.mark.slow
def test_short_synthetic_run_identifies_the_user_type(synth):
    """Two heads on the synthetic task (two user types): ≥ 95 % at m = 5 after 200 steps."""
    model = build_model(NPModelConfig(kind="mixture-btl", feature_dim=1, hidden=64, num_components=2), seed=0)
    short_synthetic_fit(model, synth)
    grid = evaluate_grid(model, synth, context_sizes=(0, 5), episodes=200)
    assert grid.average[5].mean >= 0.95
    assert grid.average[0].mean <= 0.80
