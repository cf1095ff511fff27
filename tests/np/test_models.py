"""Model invariants: permutation invariance, empty contexts, masking, privacy, KL direction,
likelihood, inference API, persistence and input errors."""

import math

import numpy as np
import pytest
import torch

from personalign.np.episodes import collate, episode_rng
from personalign.np.errors import (
    CheckpointError,
    EmptyPairsError,
    FeatureDimensionError,
    NonFiniteFeaturesError,
)
from personalign.np.models import (
    BTLRewardModel,
    Gaussian,
    NPBTLRewardModel,
    build_model,
    count_parameters,
    kl_normal,
    load_model,
)
from personalign.np.synthetic import synthetic_model_config

from .conftest import tiny_config


def _pairs(m, d=1, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).uniform(size=(m, 2, d)).astype(np.float32))


def _z(model, pairs):
    mask = torch.ones(1, pairs.shape[0], dtype=torch.bool)
    with torch.no_grad():
        return model.encode(pairs.unsqueeze(0), mask)[0]


def test_parameter_counts_match_spec():
    assert count_parameters(build_model(synthetic_model_config("np-btl", latent=True))) == pytest.approx(
        730_000, rel=0.01
    )
    assert isinstance(build_model(synthetic_model_config("btl")), BTLRewardModel)


def test_context_encoder_is_permutation_invariant():
    model = build_model(tiny_config(), seed=0).eval()
    pairs = _pairs(7)
    z = _z(model, pairs)
    for s in range(3):
        perm = torch.from_numpy(np.random.default_rng(s).permutation(7))
        assert torch.allclose(_z(model, pairs[perm]), z, atol=1e-5)
    assert not torch.allclose(_z(model, pairs[:6]), z, atol=1e-4)  # but it does depend on the content


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_empty_context_gives_the_prior(pooling):
    model = build_model(tiny_config(pooling=pooling), seed=0).eval()
    state = model.condition([])
    assert state.num_context == 0
    with torch.no_grad():
        prior = model.context_encoder.outer(torch.zeros(1, 32))
    assert torch.allclose(state.z, prior)
    r = state.reward(np.array([[0.1], [0.9]]))
    assert np.isfinite(r).all() and r.shape == (2,)


def test_padding_and_masking_equal_unpadded():
    model = build_model(tiny_config(), seed=1).eval()
    sizes = [0, 1, 4, 10]
    singles = [_z(model, _pairs(m, seed=m)) if m else model.condition([]).z[0] for m in sizes]
    batch = torch.zeros(len(sizes), 10, 2, 1)
    mask = torch.zeros(len(sizes), 10, dtype=torch.bool)
    for i, m in enumerate(sizes):
        if m:
            batch[i, :m] = _pairs(m, seed=m)
            batch[i, m:] = 123.0  # garbage in the padding must not matter
            mask[i, :m] = True
    with torch.no_grad():
        z = model.encode(batch, mask)
    for i in range(len(sizes)):
        assert torch.allclose(z[i], singles[i], atol=1e-5)


def test_user_state_depends_only_on_that_users_pairs(synth):
    """Privacy: in a batch, changing other users' pairs never changes a user's z; condition() on the
    user's own pairs alone reproduces it."""
    model = build_model(tiny_config(), seed=2).eval()
    eps = [synth.sample_episode(episode_rng(5, "test", i), "test", i % 2, 3 + i, 20, True) for i in range(4)]
    others = [
        synth.sample_episode(episode_rng(6, "test", i), "test", 1 - i % 2, 10, 20, True) for i in range(4)
    ]
    b1 = collate(eps)
    b2 = collate([eps[0], *others[1:]])
    with torch.no_grad():
        z1, z2 = model.encode(b1.context, b1.context_mask), model.encode(b2.context, b2.context_mask)
    assert torch.allclose(z1[0], z2[0], atol=1e-6)
    assert not torch.allclose(z1[1], z2[1], atol=1e-4)
    alone = model.condition(eps[0].context).z[0]
    assert torch.allclose(alone, z1[0], atol=1e-5)


def test_kl_matches_hand_computation_and_direction():
    q = Gaussian(torch.tensor([[0.5, -1.0]]), torch.tensor([[0.5, 3.0]]))
    p = Gaussian(torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]]))
    # KL(q||p) per dim: log(sp/sq) + (sq^2 + (mq-mp)^2)/(2 sp^2) - 1/2
    hand = (math.log(1 / 0.5) + (0.25 + 0.25) / 2 - 0.5) + (math.log(1 / 3) + (9 + 1) / 2 - 0.5)
    assert kl_normal(q, p).item() == pytest.approx(hand, rel=1e-6)
    reverse = (math.log(0.5 / 1) + (1 + 0.25) / (2 * 0.25) - 0.5) + (
        math.log(3 / 1) + (1 + 1) / (2 * 9) - 0.5
    )
    assert kl_normal(p, q).item() == pytest.approx(reverse, rel=1e-6)
    assert abs(hand - reverse) > 1.0  # the direction matters


def test_latent_loss_uses_kl_target_to_context(synth):
    model = build_model(tiny_config(latent=True), seed=3)
    eps = [synth.sample_episode(episode_rng(1, "train", i), "train", i % 2, 2, 8, False) for i in range(6)]
    b = collate(eps)
    model.eval()  # no attention dropout, so both encodings below are reproducible
    out = model.loss(b)
    q_c = model.encode(b.context, b.context_mask)
    q_t = model.encode(b.targets, b.target_mask)
    assert out["kl"].item() == pytest.approx(kl_normal(q_t, q_c).mean().item(), rel=1e-5)
    assert out["kl"].item() != pytest.approx(kl_normal(q_c, q_t).mean().item(), rel=1e-3)
    model.train()
    model.loss(b)["loss"].backward()
    assert model.context_encoder.phi[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["btl", "np-btl"])
def test_likelihood_matches_hand_computation(kind, synth):
    model = build_model(tiny_config(kind), seed=4).eval()
    eps = [synth.sample_episode(episode_rng(2, "test", i), "test", 0, i, 5, True) for i in range(3)]
    out = model.loss(collate(eps))
    hand = []
    for e in eps:
        st = model.condition(e.context)
        rc, rr = st.reward(e.targets[:, 0]), st.reward(e.targets[:, 1])
        hand.append(np.mean(-np.log(1 / (1 + np.exp(-(rc - rr))))))
    assert out["nll"].item() == pytest.approx(float(np.mean(hand)), rel=1e-4)


def test_fast_scoring_equals_plain_head():
    model = build_model(tiny_config(), seed=5).eval()
    state = model.condition(_pairs(4).numpy())
    x = np.random.default_rng(0).uniform(size=(50, 1)).astype(np.float32)
    with torch.no_grad():
        slow = model.rewards(torch.from_numpy(x), state.z.expand(50, -1)).numpy()
    assert np.allclose(state.reward(x), slow, atol=1e-5)
    p = state.preference_probability(x[:25], x[25:])
    assert np.allclose(p, 1 / (1 + np.exp(-(slow[:25] - slow[25:]))), atol=1e-5)
    assert (state.prefers(x[:25], x[25:]) == (p > 0.5)).all()


def test_unconditional_state_ignores_context():
    model = build_model(tiny_config("btl"), seed=6).eval()
    x = np.linspace(0, 1, 9)[:, None]
    assert np.array_equal(model.condition([]).reward(x), model.condition(_pairs(5).numpy()).reward(x))


def test_bad_inputs_raise_clear_errors():
    model = build_model(tiny_config(), seed=7).eval()
    with pytest.raises(EmptyPairsError):
        model.condition([], allow_empty=False)
    with pytest.raises(NonFiniteFeaturesError, match="pair 1"):
        model.condition(np.array([[[0.1], [0.2]], [[np.nan], [0.3]]]))
    with pytest.raises(FeatureDimensionError, match=r"\(m, 2, 1\)"):
        model.condition(np.zeros((3, 2, 4)))
    with pytest.raises(FeatureDimensionError, match="3 chosen but 2 rejected"):
        model.condition((np.zeros((3, 1)), np.zeros((2, 1))))
    state = model.condition([])
    with pytest.raises(EmptyPairsError):
        state.reward(np.zeros((0, 1)))
    with pytest.raises(NonFiniteFeaturesError):
        state.reward(np.array([[np.inf]]))
    with pytest.raises(FeatureDimensionError):
        state.prefers(np.zeros((2, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="text needs a featurizer"):
        state.reward("prompt", ["a response"])
    text_model = build_model(tiny_config(feature_dim=4), seed=0)
    with pytest.raises(FeatureDimensionError, match=r"expected shape \(n, 4\)"):
        text_model.condition([]).reward(np.zeros((2, 3)))


class _Toy:
    """A featurizer for the text path: features = (len(prompt), len(response)) scaled."""

    dim = 2

    def features(self, prompts, responses):
        return np.array(
            [[len(p) / 10, len(r) / 10] for p, r in zip(prompts, responses, strict=True)], np.float32
        )


def test_text_path_through_featurizer():
    model = build_model(tiny_config(feature_dim=2), seed=8).eval()
    st = model.condition([("q", "long answer", "no"), ("q2", "a b c d", "x")], featurizer=_Toy())
    assert st.num_context == 2
    r = st.reward("q", ["one", "three"])
    assert np.allclose(r, st.reward(_Toy().features(["q", "q"], ["one", "three"])))
    assert st.prefers("q", ["aaaa"], ["b"]).shape == (1,)
    with pytest.raises(EmptyPairsError):
        model.condition([("q", "", "no")], featurizer=_Toy())


def test_save_load_roundtrip(tmp_path):
    model = build_model(tiny_config(), seed=9).eval()
    model.save(tmp_path, metadata={"task": "synthetic"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.safetensors"]
    loaded, meta = load_model(tmp_path)
    assert isinstance(loaded, NPBTLRewardModel) and meta == {"task": "synthetic"}
    x = np.linspace(0, 1, 5)[:, None]
    ctx = _pairs(3).numpy()
    assert np.array_equal(model.condition(ctx).reward(x), loaded.condition(ctx).reward(x))
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path)


def test_relabelled_context_changes_only_the_context(synth):
    from personalign.np.diagnostics import relabel_context
    from personalign.np.episodes import evaluation_episodes
    from personalign.np.synthetic import REWARDS

    e = evaluation_episodes(synth, seed=0, split="test", type_index=0, num_context=8, n=1, num_targets=5)[0]
    swapped = relabel_context(synth, "test", e, 1, 1.0, np.random.default_rng(0))
    assert np.array_equal(swapped.targets, e.targets) and np.array_equal(swapped.context_ids, e.context_ids)
    r1 = REWARDS[1](swapped.context[:, :, 0])
    assert (r1[:, 0] > r1[:, 1]).all()  # now chosen-first for type 1
    half = relabel_context(synth, "test", e, 1, 0.5, np.random.default_rng(0))
    changed = (half.context != e.context).any(axis=(1, 2)).sum()
    assert changed <= 4
