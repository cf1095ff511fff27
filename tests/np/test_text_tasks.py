"""Real-text tasks: loading through the data layer, split by prompt, label matrices, pools."""

from __future__ import annotations

import random

import numpy as np
import pytest

from personalign.data.preferences import load_ultrafeedback
from personalign.embed.hashing import HashingEmbedder
from personalign.np.episodes import evaluation_episodes
from personalign.np.features import TextFeaturizer
from personalign.np.text_tasks import (
    TEXT_TASKS,
    build_splits,
    clean_pairs,
    episode_source,
    get_text_task,
    label_matrix,
    load_text_pairs,
    split_of,
    text_pairs_from_preferences,
)
from personalign.np.text_users import TextPair, length_clear, word_count


@pytest.fixture(scope="module")
def all_pairs(data_dir):
    return load_text_pairs(data_dir)


def test_real_pairs_load_with_sources_and_expected_counts(all_pairs):
    by_source = {s: sum(p.source == s for p in all_pairs) for s in ("helpful", "harmless", "uf")}
    # spec §5c: 2,354 / 2,312 HH pairs minus ~24 unequal-prompt or bad pairs; 1,200 UF pairs
    assert 2300 <= by_source["helpful"] <= 2354
    assert 2260 <= by_source["harmless"] <= 2312
    assert 1150 <= by_source["uf"] <= 1200
    assert 100 <= sum(p.tie for p in all_pairs) <= 140  # 136 UF ties in the files
    assert all(not p.tie for p in all_pairs if p.source != "uf")
    assert [p.pair_id for p in all_pairs] == sorted(p.pair_id for p in all_pairs)


def test_split_is_by_prompt_and_roughly_80_10_10(all_pairs):
    splits = [split_of(p.prompt) for p in all_pairs]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "val", "test")}
    assert 0.76 < frac["train"] < 0.84 and 0.07 < frac["val"] < 0.13 and 0.07 < frac["test"] < 0.13
    by_prompt: dict[str, set[str]] = {}
    for p, s in zip(all_pairs, splits, strict=True):
        by_prompt.setdefault(p.prompt, set()).add(s)
    assert all(len(v) == 1 for v in by_prompt.values())


def test_pairs_and_splits_do_not_depend_on_file_order(data_dir):
    uf = list(load_ultrafeedback(data_dir))
    a = clean_pairs(text_pairs_from_preferences(uf))
    shuffled = uf[:]
    random.Random(3).shuffle(shuffled)
    b = clean_pairs(text_pairs_from_preferences(shuffled))
    assert a == b
    assert [split_of(p.prompt) for p in a] == [split_of(p.prompt) for p in b]


def test_length_clear_share_matches_the_spec(all_pairs):
    for source, lo, hi in (("helpful", 0.86, 0.94), ("harmless", 0.85, 0.93), ("uf", 0.80, 0.88)):
        sel = [p for p in all_pairs if p.source == source]
        share = np.mean([length_clear(word_count(p.a), word_count(p.b)) for p in sel])
        assert lo < share < hi, (source, share)


def toy_pairs(n: int = 60) -> list[TextPair]:
    out = []
    for i in range(n):
        source = ("helpful", "harmless", "uf")[i % 3]
        long, short = " ".join(["word"] * (20 + i % 7)), " ".join(["w"] * (2 + i % 3))
        a, b = (long, short) if i % 2 else (short, long)
        out.append(
            TextPair(
                f"{source}:{i:04d}", f"prompt number {i}", a, b, source, tie=(source == "uf" and i % 9 == 0)
            )
        )
    return out


def test_label_matrix_uses_pool_convention():
    pairs = toy_pairs(12)
    lab = label_matrix(pairs, ("faithful", "harmless_contrarian", "concise", "detailed"))
    for i, p in enumerate(pairs):
        assert lab[0, i] == (-1 if p.tie else 0)
        assert lab[1, i] == (-1 if p.tie else (1 if p.source == "harmless" else 0))
        a_shorter = word_count(p.a) < word_count(p.b)
        assert lab[2, i] == (0 if a_shorter else 1)
        assert lab[3, i] == 1 - lab[2, i]


def test_build_splits_orient_pairs_by_type_and_keep_sources():
    pairs = toy_pairs(90)
    fz = TextFeaturizer(HashingEmbedder(16))
    task = get_text_task("hh")
    assert task.name == "hh_flip"
    feats = fz.featurize([(p.prompt, p.a, p.b) for p in pairs])
    splits = build_splits(task, pairs, feats)
    assert sum(len(s.pairs) for s in splits.values()) == sum(p.source != "uf" for p in pairs)
    for name, sp in splits.items():
        assert all(split_of(p.prompt) == name and p.source in task.sources for p in sp.pairs)
    train = splits["train"]
    k = task.types.index("harmless_contrarian")
    ids = train.pool.defined(k)
    ordered = train.pool.ordered(ids, k)
    for row, i in zip(ordered, ids, strict=True):
        p = train.pairs[i]
        chosen = fz.features([p.prompt], [p.b if p.source == "harmless" else p.a])[0]
        np.testing.assert_allclose(row[0], chosen, atol=1e-6)


def test_episode_source_context_and_targets_are_disjoint():
    pairs = toy_pairs(300)
    fz = TextFeaturizer(HashingEmbedder(16))
    task = get_text_task("length")
    splits = build_splits(task, pairs, fz.featurize([(p.prompt, p.a, p.b) for p in pairs]))
    src = episode_source(splits, task)
    assert tuple(src.type_names) == ("concise", "detailed") and src.feature_dim == 32
    for ep in evaluation_episodes(
        src, seed=0, split="train", type_index=0, num_context=5, n=20, num_targets=10
    ):
        assert not set(ep.context_ids) & set(ep.target_ids)


def test_tasks_registry():
    assert set(TEXT_TASKS.names()) >= {"hh_flip", "length", "mix4", "uf", "style4"}
    assert get_text_task("mix4").types == ("faithful", "harmless_contrarian", "concise", "detailed")
    assert get_text_task("style4").types == ("concise", "detailed", "inquisitive", "assertive")
    with pytest.raises(KeyError, match="available"):
        get_text_task("nope")


def test_np_task_entries_follow_the_task_protocol():
    from personalign.np.opinions import OPINIONS_TASK
    from personalign.np.tasks import NPTask
    from personalign.np.text_tasks import HH_TASK, LENGTH_TASK, MIX4_TASK, UF_TASK

    for task in (HH_TASK, UF_TASK, LENGTH_TASK, MIX4_TASK, OPINIONS_TASK):
        assert isinstance(task, NPTask)
        mc = task.model_config("np-btl", 768)
        assert mc.feature_dim == 768 and mc.pair_encoder_layers == 1 and mc.hidden == 256
        tc = task.training_config(seed=3, max_steps=5)
        assert tc.seed == 3 and tc.max_steps == 5
    assert HH_TASK.name == "hh_flip" and "simulated" in HH_TASK.description
    assert OPINIONS_TASK.training_config().disjoint_train_context is True
    fz = UF_TASK.featurizer(embedder="hashing", length_feature=True)
    assert fz.dim == 2 * 256 + 1
