"""A short real-pipeline training run on text features (hashing embedder, seconds): NP-BTL learns to
read a user's type from context on the conflicting length task, pooled BTL cannot."""

from __future__ import annotations

import random

import numpy as np
import pytest

from personalign.embed.hashing import HashingEmbedder
from personalign.np.episodes import evaluation_episodes
from personalign.np.features import FeaturizerConfig, TextFeaturizer
from personalign.np.text_bench import (
    TextBenchConfig,
    TextData,
    accuracy_grid,
    identification_grid,
    oracle_mixture_grid,
    source_accuracy,
    train_model,
)
from personalign.np.text_tasks import build_splits, episode_source, get_text_task
from personalign.np.text_users import TextPair

VOCAB = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
]


def toy_length_pairs(n: int, seed: int = 0) -> list[TextPair]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        short = " ".join(rng.choices(VOCAB, k=rng.randint(2, 8)))
        long = " ".join(rng.choices(VOCAB, k=rng.randint(20, 60)))
        a, b = (short, long) if rng.random() < 0.5 else (long, short)
        out.append(TextPair(f"helpful:{i:05d}", f"question {i} {rng.choice(VOCAB)}", a, b, "helpful"))
    return out


def toy_text_data(pairs: list[TextPair], task_name: str) -> TextData:
    """A text task built from ``pairs`` with hashing features and the length feature."""
    fz = TextFeaturizer(HashingEmbedder(32), FeaturizerConfig(length_feature=True))
    task = get_text_task(task_name)
    feats = fz.featurize([(p.prompt, p.a, p.b) for p in pairs])
    splits = build_splits(task, pairs, feats)
    return TextData(splits, episode_source(splits, task), fz, task.types, feats.identical_fraction())


@pytest.fixture(scope="module")
def length_data() -> TextData:
    return toy_text_data(toy_length_pairs(1500), "length")


def test_np_btl_adapts_to_the_user_type_where_pooled_btl_cannot(length_data):
    cfg = TextBenchConfig(
        task="length",
        hidden=64,
        lr=1e-3,
        epochs=1,
        episodes_per_epoch=32 * 40,
        batch_episodes=32,
        eval_every=20,
        val_episodes=64,
        eval_episodes=40,
        context_sizes=(0, 10),
        num_threads=1,
    )
    np_model, trainer = train_model("np-btl", length_data, cfg)
    btl, _ = train_model("btl", length_data, cfg)
    assert trainer.step_ == 40
    np_grid = accuracy_grid(np_model, length_data, cfg)
    btl_grid = accuracy_grid(btl, length_data, cfg)
    for t in ("concise", "detailed"):
        assert np_grid[t]["10"]["mean"] >= 0.85, np_grid
    # the types conflict on every pair: an unconditional model averages about 50 %
    assert np.mean([btl_grid[t]["0"]["mean"] for t in ("concise", "detailed")]) == pytest.approx(
        0.5, abs=0.06
    )
    assert np.mean([np_grid[t]["0"]["mean"] for t in ("concise", "detailed")]) == pytest.approx(0.5, abs=0.06)
    # the oracles' posterior mixture identifies the type from 10 context pairs and sits near chance without
    oracles = [train_model("btl", length_data, cfg, type_indices=(k,))[0] for k in range(2)]
    mix = oracle_mixture_grid(oracles, length_data, cfg)
    ident = identification_grid(oracles, length_data, cfg)
    for t in ("concise", "detailed"):
        assert mix[t]["10"]["mean"] >= 0.9, mix
        assert ident[t]["10"] >= 0.9 and ident[t]["0"] == 0.5, ident  # an empty context: a coin flip
    assert np.mean([mix[t]["0"]["mean"] for t in ("concise", "detailed")]) == pytest.approx(0.5, abs=0.06)


def test_bench_config_passes_model_settings_to_np_btl_only():
    cfg = TextBenchConfig(pooling="mean", latent=True, beta_kl=0.2, length_feature=True)
    np_cfg, btl_cfg = cfg.model_config("np-btl", 9), cfg.model_config("btl", 9)
    assert (np_cfg.pooling, np_cfg.latent, np_cfg.beta_kl, np_cfg.feature_dropout_keep_last) == (
        "mean",
        True,
        0.2,
        1,
    )
    assert not btl_cfg.latent  # baselines and oracles stay unconditional
    tcfg = TextBenchConfig(max_context=40).training_config(1000)
    assert (tcfg.max_context, tcfg.num_targets) == (40, 40)  # the context is drawn from the targets
    tcfg = TextBenchConfig(max_context=40, disjoint_train_context=True).training_config(1000)
    assert (tcfg.num_targets, tcfg.disjoint_train_context) == (20, True)


def test_source_breakdown_shows_where_the_types_conflict():
    # chosen = the longer response on both sources: `faithful` is "prefer longer" everywhere, and
    # `harmless_contrarian` is "prefer longer" on helpful pairs but "prefer shorter" on harmless ones
    rng = random.Random(1)
    pairs = []
    for i in range(600):
        source = "helpful" if i % 2 else "harmless"
        long = " ".join(rng.choices(VOCAB, k=rng.randint(20, 60)))
        short = " ".join(rng.choices(VOCAB, k=rng.randint(2, 8)))
        pairs.append(TextPair(f"{source}:{i:05d}", f"question {i}", long, short, source))
    data = toy_text_data(pairs, "hh_flip")
    cfg = TextBenchConfig(
        task="hh_flip",
        hidden=32,
        lr=3e-3,
        epochs=1,
        episodes_per_epoch=32 * 30,
        batch_episodes=32,
        eval_every=10,
        val_episodes=32,
        eval_episodes=30,
        context_sizes=(0, 5),
        num_threads=1,
    )
    oracle, _ = train_model("btl", data, cfg, type_indices=(0,))  # the `faithful` oracle: longer wins
    by_source = source_accuracy(oracle, data, cfg, 0)
    assert by_source["faithful"]["helpful"] > 0.9 and by_source["faithful"]["harmless"] > 0.9
    assert by_source["harmless_contrarian"]["helpful"] > 0.9
    assert by_source["harmless_contrarian"]["harmless"] < 0.1  # the one place the types disagree
    # the per-source accuracies are the grid's accuracy split by source (same episodes, same targets)
    grid = accuracy_grid(oracle, data, cfg, context_sizes=(0,))
    test_sources = [p.source for p in data.splits["test"].pairs]
    for t in data.types:
        episodes = evaluation_episodes(
            data.source,
            seed=cfg.eval_seed,
            split="test",
            type_index=data.types.index(t),
            num_context=0,
            n=cfg.eval_episodes,
            num_targets=cfg.eval_targets,
        )
        ids = np.concatenate([e.target_ids for e in episodes])
        share = np.mean([test_sources[i] == "helpful" for i in ids])
        pooled = share * by_source[t]["helpful"] + (1 - share) * by_source[t]["harmless"]
        assert pooled == pytest.approx(grid[t]["0"]["mean"], abs=1e-9)
