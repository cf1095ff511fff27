"""LM calls and seconds per user for one Fermi fit + predict, against a naive implementation.

Both run in the same process on the same user with the same model object (loaded once):

* **ours**: :class:`personalign.fermi.personalizer.FermiPersonalizer` as shipped: each prompt is
  scored on all training items in one batched ``score_choices`` call, behind the SQLite LM-call
  cache (a fresh file, so nothing is pre-warmed), and Retrieval-of-Prompt reads the cached
  correctness matrix, so answering a question costs one LM request;
* **naive**: the same optimization loop and the same optimizer calls, but without batching (every
  training item of every prompt is its own ``score_choices`` call), without the cache, and
  without the correctness matrix: at query time RoP re-scores every pool prompt on the query's
  neighbours, then answers with the chosen prompt.

The figure is the ratio naive / ours of answering-LM requests and of seconds (total, and for the
scoring part alone: generation by the optimizer is identical work in both). The script asserts that
both give identical predictions (and the same prompt per question), and exits 1 otherwise.

    python bench/fermi_cost.py --model smollm2-135m --T 3 --K 2 --max-test 12 --json runs/fermi_cost.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from personalign.data.types import Question, UserSplit
from personalign.fermi.config import FermiConfig
from personalign.fermi.loop import UserTask, optimize
from personalign.fermi.personalizer import FermiPersonalizer
from personalign.fermi.prompts import render_system
from personalign.fermi.rop import nearest, question_text, select_prompt, similarity_matrix
from personalign.lm.base import ChoiceRequest, ChoiceResult, GenerationRequest, GenerationResult
from personalign.lm.cache import CachedLM
from personalign.lm.chat import render_choice
from personalign.lm.usage import Usage


class Meter:
    """Counts scoring requests, scoring forward calls and seconds, and generation seconds, of the
    wrapped model; ``batched=False`` sends every scoring request as its own call (naive)."""

    def __init__(self, lm, batched: bool = True) -> None:
        self.lm, self.batched = lm, batched
        self.backend, self.usage = lm.backend, lm.usage
        self.score_requests = self.score_calls = self.gen_requests = 0
        self.score_seconds = self.gen_seconds = 0.0

    @property
    def model_id(self) -> str:
        return self.lm.model_id

    def count_tokens(self, text: str) -> int:
        return self.lm.count_tokens(text)

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        t0 = time.perf_counter()
        if self.batched:
            out = self.lm.score_choices(list(requests))
            self.score_calls += 1
        else:
            out = []
            for r in requests:
                out.extend(self.lm.score_choices([r]))
                self.score_calls += 1
        self.score_requests += len(requests)
        self.score_seconds += time.perf_counter() - t0
        return out

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        t0 = time.perf_counter()
        out = self.lm.generate(list(requests))
        self.gen_requests += len(requests)
        self.gen_seconds += time.perf_counter() - t0
        return out

    def report(self, inner_usage_before: Usage, seconds: float) -> dict[str, float]:
        executed = self.lm.usage - inner_usage_before if hasattr(self.lm, "usage") else Usage()
        return {
            "answer_requests": self.score_requests,
            "answer_forward_calls": self.score_calls,
            "optimizer_requests": self.gen_requests,
            "cache_hits": executed.cache_hits,
            "scoring_seconds": self.score_seconds,
            "generation_seconds": self.gen_seconds,
            "seconds": seconds,
        }


def naive_predict(
    lm: Meter, fitted: FermiPersonalizer, embedder, questions: Sequence[Question]
) -> list[dict]:
    """RoP without the correctness matrix: re-score every pool prompt on the neighbours."""
    pool, cfg, train = fitted.pool_, fitted.config, fitted.train_
    train_emb = embedder.encode([question_text(it.question) for it in train])
    q_emb = embedder.encode([question_text(q) for q in questions])
    sims = similarity_matrix(q_emb, train_emb)
    out = []
    for qi, q in enumerate(questions):
        neigh = nearest(sims[qi], len(train))[: max(1, min(cfg.n_neighbors, len(train)))]
        ids = [i for i, _ in neigh]
        C = []
        for sp in pool:  # fresh scoring of this prompt on each neighbour, one call each
            row = [False] * len(train)
            for i in ids:
                item = train[i]
                system = render_system(sp.spec, train, exclude=i)
                res = lm.score_choices([render_choice(item.question.text, item.question.options, system)])[0]
                row[i] = res.pred == item.answer
            C.append(row)
        choice = select_prompt(
            C, [sp.acc for sp in pool], [sp.soft for sp in pool], [sp.birth for sp in pool], ids, cfg.use_soft
        )
        sp = pool[choice.index]
        system = render_system(sp.spec, train)
        res = lm.score_choices([render_choice(q.text, q.options, system)])[0]
        out.append({"question_id": q.id, "pred": res.pred, "prompt_index": choice.index})
    return out


def pick_user(args) -> UserSplit:
    from personalign.eval.runner import EvalConfig, load_userbase, make_split, select_users

    cfg = EvalConfig(
        dataset="opinionqa-users",
        methods=("fermi",),
        users=(args.user,) if args.user else 1,
        user_set=None if args.user else "complete",
        train_k=15,
        max_test=args.max_test,
        data_dir=args.data_dir,
    )
    ub = load_userbase(cfg)
    return make_split(ub, select_users(ub, cfg)[0], cfg)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--user", default=None, help="OpinionQA user id (default: first 'complete' user, seeded)")
    ap.add_argument("--T", type=int, default=3)
    ap.add_argument("--K", type=int, default=2)
    ap.add_argument("--max-test", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=64, help="optimizer tokens per candidate")
    ap.add_argument("--retries", type=int, default=0, help="extra optimizer calls per missing candidate")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    from personalign.embed.factory import get_embedder
    from personalign.lm.factory import get_lm

    split = pick_user(args)
    base = get_lm(args.model, cache=False)  # one model object for both variants
    embedder = get_embedder(args.embedder)
    # small-model mode (one sampled call per candidate, stop at </prompt>) bounds generation time;
    # generation is the same work in both variants, so it only dilutes the ratio.
    config = FermiConfig.named(
        "default",
        T=args.T,
        K=args.K,
        small_model_mode=True,
        max_new_tokens=args.max_new_tokens,
        retries=args.retries,
    )
    test_q = list(split.test_questions)
    print(
        f"user {split.user_id}: {len(split.train)} train, {len(test_q)} test; model {args.model}; "
        f"T={args.T} K={args.K} L={config.L} N={config.n_neighbors}",
        flush=True,
    )

    # ours: batched scoring behind a fresh cache, RoP from the cached correctness matrix
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedLM(base, path=Path(tmp) / "calls.sqlite")
        ours_lm = Meter(cached, batched=True)
        u0 = cached.usage.copy()
        t0 = time.perf_counter()
        fermi = FermiPersonalizer(ours_lm, embedder=embedder, config=config, seed=0)
        fermi.fit(split.for_training())
        t_fit = time.perf_counter() - t0
        preds = fermi.predict(test_q)
        ours = ours_lm.report(u0, time.perf_counter() - t0)
        ours["fit_seconds"] = t_fit
    print(f"ours done: {ours}", flush=True)

    # naive: same loop unbatched and uncached, RoP re-scoring at query time
    naive_lm = Meter(base, batched=False)
    u0 = base.usage.copy()
    t0 = time.perf_counter()
    state = optimize(UserTask.from_split(split), naive_lm, None, config, seed=0, embedder=embedder)
    t_fit = time.perf_counter() - t0
    naive_fitted = FermiPersonalizer(base, embedder=embedder, config=config)
    naive_fitted._set_learned(UserTask.from_split(split), state.memory_prompts(), state.models)
    naive_preds = naive_predict(naive_lm, naive_fitted, embedder, test_q)
    naive = naive_lm.report(u0, time.perf_counter() - t0)
    naive["fit_seconds"] = t_fit
    print(f"naive done: {naive}", flush=True)

    same_pool = [sp.text for sp in fermi.pool_] == [sp.text for sp in state.memory_prompts()]
    same = [p.pred for p in preds] == [p["pred"] for p in naive_preds] and [
        p.info.get("prompt_index") for p in preds
    ] == [p["prompt_index"] for p in naive_preds]

    def ratio(key: str) -> float:
        return naive[key] / ours[key] if ours[key] else float("inf")

    rows = [
        ("answering-LM requests", "answer_requests"),
        ("answering forward calls", "answer_forward_calls"),
        ("optimizer requests", "optimizer_requests"),
        ("scoring seconds", "scoring_seconds"),
        ("generation seconds", "generation_seconds"),
        ("total seconds (fit + predict)", "seconds"),
    ]
    print("\n| per user | ours | naive | naive / ours |\n|---|---|---|---|")
    for label, key in rows:
        fmt = "{:.1f}" if "seconds" in key else "{:.0f}"
        print(f"| {label} | {fmt.format(ours[key])} | {fmt.format(naive[key])} | {ratio(key):.2f}× |")
    print(
        f"\nsame pool: {same_pool}; identical predictions and RoP choices on {len(test_q)} questions: {same}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {"user": split.user_id, "args": vars(args), "ours": ours, "naive": naive, "identical": same},
                indent=2,
            )
        )
    return 0 if same and same_pool else 1


if __name__ == "__main__":
    sys.exit(main())
