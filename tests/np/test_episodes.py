"""Episode sampling: disjointness in evaluation, fresh draws per epoch, reproducibility, ordering."""

import numpy as np
import pytest

from personalign.np.episodes import (
    PoolEpisodeSource,
    PreferencePool,
    SamplingPlan,
    TrainingBatches,
    collate,
    episode_rng,
    evaluation_episodes,
    validation_episodes,
)
from personalign.np.errors import FeatureDimensionError, NonFiniteFeaturesError, NPInputError
from personalign.np.synthetic import REWARDS, synthetic_pools, synthetic_source

PLAN = SamplingPlan(batch_episodes=16, num_targets=20, max_context=10, type_indices=(0, 1))


def test_split_sizes_and_determinism():
    pools = synthetic_pools()
    assert {k: len(v.features) for k, v in pools.items()} == {"train": 16000, "val": 2000, "test": 2000}
    again = synthetic_pools()
    assert np.array_equal(pools["test"].features, again["test"].features)
    assert np.array_equal(pools["test"].labels, again["test"].labels)


def test_evaluation_context_and_targets_are_disjoint(synth):
    for k in (0, 1):
        for m in (1, 5, 10):
            for e in evaluation_episodes(
                synth, seed=0, split="test", type_index=k, num_context=m, n=200, num_targets=20
            ):
                assert len(e.context_ids) == m and len(e.target_ids) == 20
                assert not set(e.context_ids.tolist()) & set(e.target_ids.tolist())
                assert len(set(e.target_ids.tolist())) == 20


def test_validation_episodes_are_disjoint_and_cover_all_sizes(synth):
    eps = validation_episodes(synth, seed=0, n=44, max_context=10, num_targets=20, type_indices=(0, 1))
    assert sorted({len(e.context_ids) for e in eps}) == list(range(11))
    for e in eps:
        assert not set(e.context_ids.tolist()) & set(e.target_ids.tolist())


def test_training_context_is_subset_of_targets(synth):
    ds = TrainingBatches(synth, PLAN, seed=0, epoch=0, num_batches=2)
    for e in ds.episodes(0):
        assert set(e.context_ids.tolist()) <= set(e.target_ids.tolist())


def test_fresh_across_epochs_and_reproducible(synth):
    a0 = TrainingBatches(synth, PLAN, seed=0, epoch=0, num_batches=2)[0]
    a0_again = TrainingBatches(synthetic_source(), PLAN, seed=0, epoch=0, num_batches=2)[0]
    a1 = TrainingBatches(synth, PLAN, seed=0, epoch=1, num_batches=2)[0]
    b0 = TrainingBatches(synth, PLAN, seed=1, epoch=0, num_batches=2)[0]
    assert np.array_equal(a0.targets.numpy(), a0_again.targets.numpy())
    assert np.array_equal(a0.context_mask.numpy(), a0_again.context_mask.numpy())
    assert not np.array_equal(a0.targets.numpy(), a1.targets.numpy())
    assert not np.array_equal(a0.targets.numpy(), b0.targets.numpy())
    # episodes within one epoch differ from each other too
    eps = TrainingBatches(synth, PLAN, seed=0, epoch=0, num_batches=2).episodes(0)
    assert len({tuple(e.target_ids.tolist()) for e in eps}) == len(eps)


def test_context_sizes_cover_zero_to_max(synth):
    ds = TrainingBatches(synth, SamplingPlan(64, 20, 10, type_indices=(0, 1)), seed=0, epoch=0, num_batches=4)
    sizes = {len(e.context_ids) for i in range(4) for e in ds.episodes(i)}
    assert sizes == set(range(11))


def test_pairs_are_ordered_chosen_first(synth):
    for k in (0, 1):
        e = evaluation_episodes(
            synth, seed=1, split="test", type_index=k, num_context=5, n=1, num_targets=20
        )[0]
        for pairs in (e.context, e.targets):
            r = REWARDS[k](pairs[:, :, 0])
            assert (r[:, 0] > r[:, 1]).all()


def test_type_balanced_and_restricted_types(synth):
    plan = SamplingPlan(16, 20, 10, type_indices=(0, 1), type_balanced=True)
    eps = TrainingBatches(synth, plan, seed=0, epoch=0, num_batches=1).episodes(0)
    assert sum(e.type_index == 0 for e in eps) == 8
    plan = SamplingPlan(16, 20, 10, type_indices=(1,))
    assert {
        e.type_index for e in TrainingBatches(synth, plan, seed=0, epoch=0, num_batches=1).episodes(0)
    } == {1}


def test_collate_pads_and_masks(synth):
    eps = [
        synth.sample_episode(episode_rng(0, "test", i), "test", 0, m, 20, True)
        for i, m in enumerate((0, 3, 7))
    ]
    b = collate(eps)
    assert b.context.shape == (3, 7, 2, 1)
    assert b.context_mask.sum(1).tolist() == [0, 3, 7]
    assert b.target_mask.all()


def test_pool_validation_errors():
    with pytest.raises(FeatureDimensionError):
        PreferencePool(np.zeros((4, 3, 1)), np.zeros((1, 4)))
    with pytest.raises(NonFiniteFeaturesError, match="pair 2"):
        f = np.zeros((4, 2, 1))
        f[2, 0, 0] = np.nan
        PreferencePool(f, np.zeros((1, 4)))
    with pytest.raises(NPInputError, match="labels"):
        PreferencePool(np.zeros((4, 2, 1)), np.full((1, 4), 3))
    src = PoolEpisodeSource({"test": PreferencePool(np.zeros((3, 2, 1)), np.zeros((1, 3)))}, ["t"])
    with pytest.raises(NPInputError, match="need at least 6"):
        src.sample_episode(episode_rng(0, "test"), "test", 0, 5, 20, True)
    with pytest.raises(NPInputError, match="unknown split"):
        src.sample_episode(episode_rng(0, "test"), "train", 0, 0, 2, True)
