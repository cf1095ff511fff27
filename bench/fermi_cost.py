"""LM calls and seconds per user for one Fermi fit + predict, against a naive implementation.

Both run in the same process on the same user with the same model object (loaded once):

* **ours**: :class:`personalign.fermi.personalizer.FermiPersonalizer` as shipped: the ``K``
  candidate samples of a round go to the optimizer as one ``generate`` call (the transformers
  backend computes their shared meta-prompt once and decodes each sample from a copy of that KV
  cache), each prompt is scored on all training items in one batched ``score_choices`` call,
  behind the SQLite LM-call cache (a fresh file, so nothing is pre-warmed), and
  Retrieval-of-Prompt reads the cached correctness matrix, so answering a question costs one LM
  request;
* **naive**: the same optimization loop with the same requests and seeds, but without batching
  (every candidate sample is its own ``generate`` call, with its own prompt pass, and every
  training item of every prompt is its own ``score_choices`` call), without the cache, and without
  the correctness matrix: at query time RoP re-scores every pool prompt on the query's neighbours,
  then answers with the chosen prompt.

The variants run interleaved (``--repeats R``: ours, naive, ours, naive, ...) and the median of
each figure per variant is reported, with the ratios naive / ours. The script asserts that every
run gives the same optimizer texts, the same archive of scored prompts (texts and correctness),
the same pool, the same predictions and the same prompt per question, and exits 1 otherwise.

    OMP_NUM_THREADS=1 nice python bench/fermi_cost.py --model smollm2-135m --T 3 --K 4 --max-test 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    """Counts the wrapped model's requests, calls and seconds, for scoring and for generation;
    ``batched=False`` sends every request as its own call (naive)."""

    def __init__(self, lm, batched: bool = True) -> None:
        self.lm, self.batched = lm, batched
        self.backend, self.usage = lm.backend, lm.usage
        self.score_requests = self.score_calls = self.gen_requests = self.gen_calls = 0
        self.score_seconds = self.gen_seconds = 0.0
        self.gen_texts: list[tuple[int, str]] = []

    @property
    def model_id(self) -> str:
        return self.lm.model_id

    def count_tokens(self, text: str) -> int:
        return self.lm.count_tokens(text)

    def _send(self, fn, requests: Sequence) -> tuple[list, int]:
        """``fn`` on all requests in one call (batched) or one call per request; returns the
        results and the number of calls made."""
        if self.batched:
            return fn(list(requests)), 1
        return [res for r in requests for res in fn([r])], len(requests)

    def score_choices(self, requests: Sequence[ChoiceRequest]) -> list[ChoiceResult]:
        t0 = time.perf_counter()
        out, calls = self._send(self.lm.score_choices, requests)
        self.score_calls += calls
        self.score_requests += len(requests)
        self.score_seconds += time.perf_counter() - t0
        return out

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        t0 = time.perf_counter()
        out, calls = self._send(self.lm.generate, requests)
        self.gen_calls += calls
        self.gen_requests += len(requests)
        self.gen_seconds += time.perf_counter() - t0
        self.gen_texts.extend((r.seed, res.text) for r, res in zip(requests, out, strict=True))
        return out

    def report(self, inner_usage_before: Usage, seconds: float) -> dict[str, float]:
        executed = self.lm.usage - inner_usage_before if hasattr(self.lm, "usage") else Usage()
        return {
            "answer_requests": self.score_requests,
            "answer_forward_calls": self.score_calls,
            "optimizer_requests": self.gen_requests,
            "optimizer_calls": self.gen_calls,
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


def run_ours(base, embedder, config: FermiConfig, split: UserSplit, test_q: list[Question]) -> dict:
    """Fit + predict as shipped: batched, behind a fresh LM-call cache, RoP from the matrix."""
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedLM(base, path=Path(tmp) / "calls.sqlite")
        meter = Meter(cached, batched=True)
        u0 = cached.usage.copy()
        t0 = time.perf_counter()
        fermi = FermiPersonalizer(meter, embedder=embedder, config=config, seed=0)
        fermi.fit(split.for_training())
        t_fit = time.perf_counter() - t0
        preds = fermi.predict(test_q)
        figures = meter.report(u0, time.perf_counter() - t0)
    figures["fit_seconds"] = t_fit
    return {
        "figures": figures,
        "gen_texts": meter.gen_texts,
        "archive": [(sp.text, list(sp.correct)) for sp in fermi.state_.archive],
        "pool": [sp.text for sp in fermi.pool_],
        "preds": [(p.pred, p.info.get("prompt_index")) for p in preds],
    }


def run_naive(base, embedder, config: FermiConfig, split: UserSplit, test_q: list[Question]) -> dict:
    """The same loop one request per call, uncached, RoP re-scoring at query time."""
    meter = Meter(base, batched=False)
    u0 = base.usage.copy()
    t0 = time.perf_counter()
    state = optimize(UserTask.from_split(split), meter, None, config, seed=0, embedder=embedder)
    t_fit = time.perf_counter() - t0
    fitted = FermiPersonalizer(base, embedder=embedder, config=config)
    fitted._set_learned(UserTask.from_split(split), state.memory_prompts(), state.models)
    preds = naive_predict(meter, fitted, embedder, test_q)
    figures = meter.report(u0, time.perf_counter() - t0)
    figures["fit_seconds"] = t_fit
    return {
        "figures": figures,
        "gen_texts": meter.gen_texts,
        "archive": [(sp.text, list(sp.correct)) for sp in state.archive],
        "pool": [sp.text for sp in state.memory_prompts()],
        "preds": [(p["pred"], p["prompt_index"]) for p in preds],
    }


ROWS = [
    ("answering-LM requests", "answer_requests"),
    ("answering forward calls (`score_choices` calls)", "answer_forward_calls"),
    ("optimizer requests (candidate samples)", "optimizer_requests"),
    ("optimizer calls (`generate` calls)", "optimizer_calls"),
    ("scoring seconds", "scoring_seconds"),
    ("generation seconds", "generation_seconds"),
    ("total seconds (fit + predict)", "seconds"),
]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--user", default=None, help="OpinionQA user id (default: first 'complete' user, seeded)")
    ap.add_argument("--T", type=int, default=3)
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--max-test", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=64, help="optimizer tokens per candidate")
    ap.add_argument("--retries", type=int, default=0, help="extra optimizer calls per missing candidate")
    ap.add_argument("--repeats", type=int, default=1, help="runs per variant, interleaved; medians reported")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import torch

    from personalign.embed.factory import get_embedder
    from personalign.lm.factory import get_lm

    split = pick_user(args)
    base = get_lm(args.model, cache=False)  # one model object for both variants
    embedder = get_embedder(args.embedder)
    # small-model mode: K sampled calls per round, each stopping at </prompt>
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
        f"T={args.T} K={args.K} L={config.L} N={config.n_neighbors}; "
        f"torch threads {torch.get_num_threads()}; "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    runs: dict[str, list[dict]] = {"ours": [], "naive": []}
    for rep in range(args.repeats):
        for name, fn in (("ours", run_ours), ("naive", run_naive)):
            res = fn(base, embedder, config, split, test_q)
            res["figures"]["load_average"] = os.getloadavg()[0]
            runs[name].append(res)
            print(f"{name} run {rep + 1}: {res['figures']}", flush=True)

    ref = runs["ours"][0]
    checks = {
        key: all(r[key] == ref[key] for rs in runs.values() for r in rs)
        for key in ("gen_texts", "archive", "pool", "preds")
    }
    med = {
        name: {k: statistics.median(r["figures"][k] for r in rs) for k in rs[0]["figures"]}
        for name, rs in runs.items()
    }
    ours, naive = med["ours"], med["naive"]

    def ratio(key: str) -> float:
        return naive[key] / ours[key] if ours[key] else float("inf")

    print(f"\nmedian of {args.repeats} run(s) per variant")
    print("\n| per user | ours | naive | naive / ours |\n|---|---:|---:|---:|")
    for label, key in ROWS:
        fmt = "{:,.1f}" if "seconds" in key else "{:,.0f}"
        print(f"| {label} | {fmt.format(ours[key])} | {fmt.format(naive[key])} | {ratio(key):.2f}× |")
    print(f"\nidentical across all runs on {len(test_q)} test questions: {checks}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "user": split.user_id,
                    "args": vars(args),
                    "torch_threads": torch.get_num_threads(),
                    "median": med,
                    "runs": {name: [r["figures"] for r in rs] for name, rs in runs.items()},
                    "identical": checks,
                },
                indent=2,
            )
        )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
