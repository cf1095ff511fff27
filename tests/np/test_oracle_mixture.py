"""The oracles' posterior mixture: Bayes' rule over the per-type oracles, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personalign.np.episodes import Episode, PreferencePool
from personalign.np.errors import NPInputError
from personalign.np.oracle_mixture import (
    calibration_scales,
    identification_rates,
    mixture_accuracies,
    type_posterior,
)


class ScaledReward(torch.nn.Module):
    """A stand-in oracle: ``r(y) = scale * y[0]`` (only what the mixture uses: ``rewards`` and ``device``)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale), requires_grad=False)

    @property
    def device(self) -> torch.device:
        return self.scale.device

    def rewards(self, features: torch.Tensor, z: None) -> torch.Tensor:
        return self.scale * features[:, 0]


def _pairs(values: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray(values, dtype=np.float32).reshape(-1, 2, 1)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


def test_posterior_is_uniform_without_context_and_bayes_rule_with_it():
    up, down = ScaledReward(2.0), ScaledReward(-2.0)
    assert type_posterior([up, down], _pairs([])).tolist() == [0.5, 0.5]
    post = type_posterior([up, down], _pairs([(0.9, 0.4)]))  # chosen first: 0.9 over 0.4
    lik = np.array([_sigmoid(2.0 * 0.5), _sigmoid(-2.0 * 0.5)])
    np.testing.assert_allclose(post, lik / lik.sum(), rtol=1e-6)
    with pytest.raises(NPInputError, match="at least one oracle"):
        type_posterior([], _pairs([(0.9, 0.4)]))


def test_mixture_identifies_a_type_from_its_context():
    rng = np.random.default_rng(0)
    up, down = ScaledReward(50.0), ScaledReward(-50.0)

    def episode(m: int) -> Episode:  # a user who prefers the larger value
        x = np.sort(rng.random((m + 20, 2)), axis=1)[:, ::-1].reshape(-1, 2, 1).astype(np.float32)
        return Episode(x[:m], x[m:], 0, np.arange(m), np.arange(m, m + 20))

    identified = mixture_accuracies([up, down], [episode(3) for _ in range(50)])
    assert identified.mean() > 0.99
    # with one oracle the mixture is that oracle, whatever the context
    assert mixture_accuracies([up], [episode(0) for _ in range(10)]).mean() == 1.0
    assert mixture_accuracies([down], [episode(3) for _ in range(10)]).mean() == 0.0


def test_calibration_recovers_the_scale_of_noisy_labels():
    rng = np.random.default_rng(1)
    x = rng.random((4000, 2)).astype(np.float32)
    first = rng.random(4000) < 1 / (1 + np.exp(-3.0 * (x[:, 0] - x[:, 1])))  # P(a ≻ b) = σ(3 Δ)
    pool = PreferencePool(x.reshape(-1, 2, 1), np.where(first, 0, 1)[None, :].astype(np.int8))
    (scale,) = calibration_scales([ScaledReward(1.0)], pool)
    assert 2.5 < scale < 3.6
    # the scales multiply the reward differences inside Bayes' rule
    post = type_posterior([ScaledReward(1.0), ScaledReward(-1.0)], _pairs([(0.9, 0.4)]), np.array([4.0, 4.0]))
    assert post[0] == pytest.approx(_sigmoid(2.0) / (_sigmoid(2.0) + _sigmoid(-2.0)))
    with pytest.raises(NPInputError, match="one oracle per label row"):
        calibration_scales([ScaledReward(1.0), ScaledReward(2.0)], pool)


def test_identification_rates_name_the_type_the_context_favours():
    up, down, flat = ScaledReward(2.0), ScaledReward(-2.0), ScaledReward(0.0)

    def episode(values: list[tuple[float, float]]) -> Episode:
        ctx = _pairs(values)
        return Episode(ctx, _pairs([(0.5, 0.1)]), 0, np.arange(len(ctx)), np.arange(1))

    larger_wins = [episode([(0.9, 0.4), (0.7, 0.2)]), episode([(0.6, 0.5)])]
    assert identification_rates([up, down], larger_wins, 0).tolist() == [1.0, 1.0]
    assert identification_rates([up, down], larger_wins, 1).tolist() == [0.0, 0.0]
    mixed = episode([(0.9, 0.4), (0.4, 0.9)])  # one pair each way: a tie
    assert identification_rates([up, down], [mixed], 1).tolist() == [0.5]
    assert identification_rates([up, down, flat], [episode([])], 2).tolist() == pytest.approx([1 / 3])
    with pytest.raises(NPInputError, match="not one of the 2 oracles"):
        identification_rates([up, down], larger_wins, 2)
