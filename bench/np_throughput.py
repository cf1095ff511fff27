"""NP-BTL inference throughput on CPU.

Measures, in one run and on the same random features:

* responses scored per second by a conditioned user (``state = model.condition(ctx)`` once, then
  ``state.reward(features)``), against a plain MLP of the same scoring size on the same features
  (``Linear(d,h)-ReLU-Linear(h,h)-Linear(h,h)-BN-ReLU-Linear(h,1)``, eval mode, ``torch.no_grad``): the
  ratio NP-BTL / MLP is the price of personalisation at scoring time;
* the same for the naive NP scoring path (concatenate ``[t; z]`` per response, no folded bias);
* the same for ``mixture-btl`` with ``--components`` heads (its ``state.reward`` runs every head);
* conditioning latency per user (``model.condition``) for m = 0, 1, 5, 10 context pairs, both models.

Usage::

    python bench/np_throughput.py                 # text-sized features (d = 768, h = 256)
    python bench/np_throughput.py --dim 1         # the synthetic task's scalar options
    python bench/np_throughput.py --json out.json

Results go into docs/benchmarks.md ("NP throughput").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace

import numpy as np
import torch
from torch import nn

from personalign.np.config import NPModelConfig
from personalign.np.models import build_model, count_parameters


def _best_rate(fn, n_items: int, repeats: int, min_time: float = 0.2) -> float:
    """Items per second: best of ``repeats`` timings, each looping ``fn`` for at least ``min_time``."""
    fn()  # warm-up
    rates = []
    for _ in range(repeats):
        loops, t0 = 0, time.perf_counter()
        while True:
            fn()
            loops += 1
            dt = time.perf_counter() - t0
            if dt >= min_time:
                break
        rates.append(loops * n_items / dt)
    return max(rates)


def _latency_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dim", type=int, default=768, help="feature dimension of one option")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--batches", default="16,256,4096", help="responses scored per call")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--components", type=int, default=4, help="heads of the mixture-btl model")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d, h = args.dim, args.hidden
    cfg = NPModelConfig(kind="np-btl", feature_dim=d, hidden=h, pair_encoder_layers=1 if d > 1 else 2)
    model = build_model(cfg, seed=0).eval()
    mixture = build_model(replace(cfg, kind="mixture-btl", num_components=args.components), seed=0).eval()
    mlp = nn.Sequential(
        nn.Linear(d, h),
        nn.ReLU(),
        nn.Linear(h, h),
        nn.Linear(h, h),
        nn.BatchNorm1d(h),
        nn.ReLU(),
        nn.Linear(h, 1),
    ).eval()
    rng = np.random.default_rng(0)
    ctx = rng.standard_normal((10, 2, d)).astype(np.float32)
    state = model.condition(ctx)
    mix_state = mixture.condition(ctx)
    scoring_params = count_parameters(model.target_encoder) + count_parameters(model.reward_head)
    rows = []
    for n in (int(x) for x in args.batches.split(",")):
        feats = rng.standard_normal((n, d)).astype(np.float32)

        def mlp_fn(feats=feats):
            with torch.no_grad():
                return mlp(torch.from_numpy(feats)).squeeze(-1).numpy()

        def naive_fn(feats=feats, n=n):
            with torch.no_grad():
                return model.rewards(torch.from_numpy(feats), state.z.expand(n, -1)).numpy()

        r_mlp = _best_rate(mlp_fn, n, args.repeats)
        r_np = _best_rate(lambda feats=feats: state.reward(feats), n, args.repeats)
        r_naive = _best_rate(naive_fn, n, args.repeats)
        r_mix = _best_rate(lambda feats=feats: mix_state.reward(feats), n, args.repeats)
        rows.append(
            {
                "responses_per_call": n,
                "mlp_per_s": r_mlp,
                "np_btl_per_s": r_np,
                "np_naive_per_s": r_naive,
                "ratio_np_over_mlp": r_np / r_mlp,
                "ratio_naive_over_mlp": r_naive / r_mlp,
                "mixture_per_s": r_mix,
                "ratio_mixture_over_mlp": r_mix / r_mlp,
            }
        )
    latency, mix_latency = {}, {}
    for m in (0, 1, 5, 10):
        c = ctx[:m]
        latency[str(m)] = _latency_ms(lambda c=c: model.condition(c), repeats=50)
        mix_latency[str(m)] = _latency_ms(lambda c=c: mixture.condition(c), repeats=50)
    result = {
        "feature_dim": d,
        "hidden": h,
        "threads": args.threads,
        "scoring_params_np": scoring_params,
        "mlp_params": count_parameters(mlp),
        "scoring": rows,
        "condition_latency_ms": latency,
        "mixture_components": args.components,
        "mixture_condition_latency_ms": mix_latency,
        "loadavg": os.getloadavg(),
        "torch": torch.__version__,
    }
    print(
        f"NP-BTL scoring throughput, d={d}, h={h}, {args.threads} thread(s), "
        f"load avg {os.getloadavg()[0]:.1f}"
    )
    print(
        f"scoring parameters: NP-BTL target encoder + head {scoring_params:,}; "
        f"plain MLP {count_parameters(mlp):,}"
    )
    print(
        "| responses/call | plain MLP (resp/s) | NP-BTL state.reward (resp/s) | ratio "
        f"| naive [t;z] path (resp/s) | ratio | mixture-btl K={args.components} (resp/s) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['responses_per_call']} | {r['mlp_per_s']:,.0f} | {r['np_btl_per_s']:,.0f} | "
            f"{r['ratio_np_over_mlp']:.2f} | {r['np_naive_per_s']:,.0f} | {r['ratio_naive_over_mlp']:.2f} | "
            f"{r['mixture_per_s']:,.0f} | {r['ratio_mixture_over_mlp']:.2f} |"
        )
    print(
        "conditioning latency per user (median ms): "
        + ", ".join(f"m={m}: {v:.2f}" for m, v in latency.items())
        + "; mixture-btl: "
        + ", ".join(f"m={m}: {v:.2f}" for m, v in mix_latency.items())
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
