"""Conditional best-of-N: judge matrices, win-rate metrics, prompt selection and the grid on toy
candidates with a deterministic test model."""

from __future__ import annotations

import numpy as np
import pytest

from personalign.np.best_of_n import (
    BestOfNConfig,
    bon_grid,
    dialogue_messages,
    judge_matrix,
    pick_metrics,
    select_prompts,
)
from personalign.np.text_users import TextPair, get_user_type


def words(n: int) -> str:
    return " ".join(["w"] * n)


def test_judge_matrix_and_win_rates_on_a_toy_case():
    concise = get_user_type("concise")
    w = judge_matrix(concise, "p", [words(5), words(20), words(50), words(21)])
    # 20 vs 21 words is not length-clear: 0.5 both ways; the diagonal is a tie
    np.testing.assert_array_equal(np.diag(w), [0.5] * 4)
    assert w[1, 3] == w[3, 1] == 0.5
    assert w[0, 2] == 1.0 and w[2, 0] == 0.0
    m0 = pick_metrics(w, 0, other_pick=2)
    assert m0["win_vs_random"] == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert m0["best_rate"] == 1.0 and m0["win_vs_btl"] == 1.0
    m2 = pick_metrics(w, 2, other_pick=2)
    assert m2["win_vs_random"] == pytest.approx(0.5 / 4)
    assert m2["best_rate"] == 0.0 and m2["win_vs_btl"] == 0.5
    m1 = pick_metrics(w, 1)
    assert m1["best_rate"] == 0.0  # the 5-word response is strictly preferred
    assert "win_vs_btl" not in m1


def test_detailed_judge_is_the_transpose_of_concise():
    texts = [words(3), words(30), words(12)]
    wc = judge_matrix(get_user_type("concise"), "p", texts)
    wd = judge_matrix(get_user_type("detailed"), "p", texts)
    np.testing.assert_array_equal(wc, wd.T)


def test_dialogue_messages_parse_hh_turns():
    msgs = dialogue_messages("\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: tell me a joke\n\nAssistant:")
    assert [(m.role, m.content) for m in msgs] == [
        ("user", "hi there"),
        ("assistant", "hello"),
        ("user", "tell me a joke"),
    ]
    assert [(m.role, m.content) for m in dialogue_messages("Write a poem.")] == [("user", "Write a poem.")]


def test_prompt_selection_is_deterministic_and_only_from_test_split():
    from personalign.np.text_tasks import split_of

    pairs = [
        TextPair(f"helpful:{i}", f"\n\nHuman: question {i}\n\nAssistant:", "a", "b", "helpful")
        for i in range(200)
    ]
    pairs += [TextPair(f"uf:{i}", f"UF prompt {i}", "a", "b", "uf") for i in range(200)]
    cfg = BestOfNConfig(num_prompts=10)
    a = select_prompts(pairs, cfg)
    b = select_prompts(list(reversed(pairs)), cfg)
    assert a == b and len(a) == 10
    assert all(split_of(p["prompt"]) == "test" for p in a)
    assert {p["source"] for p in a} == {"helpful", "uf"}


class LengthModel:
    """A deterministic test model over 1-d features (the word count): with a context it prefers the
    direction its context pairs show; without one it is indifferent except for a slight length bias."""

    class config:
        feature_dim = 1

    class State:
        def __init__(self, sign: float) -> None:
            self.sign = sign

        def reward(self, feats):
            return self.sign * np.asarray(feats)[:, 0]

    def condition(self, pairs):
        pairs = np.asarray(pairs)
        if len(pairs) == 0:
            return self.State(1e-3)
        return self.State(float(np.sign((pairs[:, 0, 0] - pairs[:, 1, 0]).sum())))


def test_bon_grid_rewards_conditioning_on_the_right_context():
    lengths = [[5, 40, 12, 25], [30, 8, 60, 15], [10, 11, 50, 3]]
    cands = [
        {"prompt": f"p{i}", "source": "helpful", "responses": [words(n) for n in ls]}
        for i, ls in enumerate(lengths)
    ]
    feats = [np.array(ls, dtype=np.float32)[:, None] for ls in lengths]

    def contexts(k, pi, m, c):
        # type 0 = concise (chosen shorter), type 1 = detailed (chosen longer)
        short, long = 2.0, 50.0
        pair = [short, long] if k == 0 else [long, short]
        return np.array([pair] * m, dtype=np.float32).reshape(m, 2, 1)

    cfg = BestOfNConfig(ns=(2, 4), context_sizes=(0, 3), contexts_per_prompt=2, n_bootstrap=200)
    grid = bon_grid(cands, feats, LengthModel(), LengthModel(), contexts, cfg)
    for t in ("concise", "detailed"):
        res = grid[t]["np_btl"]["4"]["3"]
        assert res["best_rate"]["mean"] == 1.0  # conditioned picks are the type's best candidate
        assert res["win_vs_random"]["mean"] == pytest.approx(
            grid[t]["reference"]["4"]["oracle_win_vs_random"]["mean"]
        )
    # the unconditional pick (slightly prefers longer) is best for detailed, worst for concise
    assert grid["concise"]["np_btl"]["4"]["0"]["win_vs_random"]["mean"] < 0.3
    assert grid["detailed"]["np_btl"]["4"]["0"]["win_vs_random"]["mean"] > 0.7
    assert grid["concise"]["np_btl"]["4"]["3"]["win_vs_btl"]["mean"] == 1.0
