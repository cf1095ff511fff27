"""Throughput of batched choice scoring through ``TransformersLM`` against the raw forward pass.

For each model, the same real OpinionQA questions are scored two ways, interleaved, several times:

* **raw**: the model's own forward pass on exactly the token batches ``score_choices`` builds
  (prepared once, outside the timer: already templated, tokenized, sorted, padded, as tensors),
  computing only the last position's logits;
* **ours**: ``TransformersLM.score_choices(requests)`` from the request objects: chat template,
  tokenization, sorting, padding, forward pass, ``log_softmax``, letter log-sum-exp, results.

Both count the same real (non-pad) prompt tokens; the figure is ``ours / raw`` tokens per second
(the overhead of our layer; 1.0 means none). ``--compare-dtypes`` also times the raw forward pass
in bfloat16 against float32 on the same batches.

Run (from the repository root):

    nice python bench/lm_throughput.py                       # both models, 64 questions
    nice python bench/lm_throughput.py --models smollm2-135m --compare-dtypes
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from personalign.lm.base import ChoiceRequest
from personalign.lm.chat import render_choice
from personalign.lm.transformers import TransformersLM, cpu_supports_bf16
from personalign.paths import shared_data_dir

PERSONA = "You are a 52-year-old nurse from Ohio who attends church most weeks and votes in every election."


def load_requests(n: int) -> list[ChoiceRequest]:
    """``n`` real OpinionQA questions (every k-th, for variety), half of them with a persona."""
    data = shared_data_dir()
    assert data is not None
    questions = json.loads((data / "opinionqa" / "hwang2023_users" / "questions.json").read_text())
    keys = sorted(questions)
    step = max(1, len(keys) // n)
    chosen = [questions[k] for k in keys[::step][:n]]
    return [
        render_choice(q["question"], q["options"], system=PERSONA if i % 2 else None)
        for i, q in enumerate(chosen)
    ]


def prepare_batches(lm: TransformersLM, requests: list[ChoiceRequest]) -> tuple[list[dict], int]:
    """The exact tensors ``score_choices`` feeds the model (same order, padding and kept logits)."""
    seqs = sorted((lm.encode_prompt(r.messages) for r in requests), key=len)
    batches = []
    for b in range(0, len(seqs), lm.batch_size):
        chunk = seqs[b : b + lm.batch_size]
        ids, mask, pos = lm.pad_batch(chunk, side="right")
        last = torch.tensor([len(s) - 1 for s in chunk], device=lm.device_)
        keep = torch.unique(last)
        batches.append(
            {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "logits_to_keep": keep}
        )
    return batches, sum(len(s) for s in seqs)


def raw_forward(model: torch.nn.Module, batches: list[dict]) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            model(**batch, use_cache=False)
    return time.perf_counter() - start


def ours(lm: TransformersLM, requests: list[ChoiceRequest]) -> float:
    start = time.perf_counter()
    lm.score_choices(requests)
    return time.perf_counter() - start


def bench_model(name: str, requests: list[ChoiceRequest], args: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    lm = TransformersLM(name, batch_size=args.batch_size, dtype=args.dtype)
    load_s = time.perf_counter() - t0
    batches, tokens = prepare_batches(lm, requests)
    raw_forward(lm.model, batches[:1])  # warm-up
    ours(lm, requests[: args.batch_size])
    raw_t, our_t = [], []
    for _ in range(args.repeats):  # interleaved, so load changes on the machine hit both alike
        raw_t.append(raw_forward(lm.model, batches))
        our_t.append(ours(lm, requests))
    raw_tps, our_tps = tokens / statistics.median(raw_t), tokens / statistics.median(our_t)
    row = {
        "model": lm.model_id,
        "dtype": str(lm.dtype_).removeprefix("torch."),
        "load_s": round(load_s, 1),
        "converted": lm.converted_,
        "requests": len(requests),
        "tokens": tokens,
        "batch_size": lm.batch_size,
        "raw_tok_s": round(raw_tps, 1),
        "ours_tok_s": round(our_tps, 1),
        "ratio": round(our_tps / raw_tps, 3),
        "raw_s": [round(t, 2) for t in raw_t],
        "ours_s": [round(t, 2) for t in our_t],
    }
    if args.compare_dtypes:
        other = torch.float32 if lm.dtype_ == torch.bfloat16 else torch.bfloat16
        twin = TransformersLM(name, batch_size=args.batch_size, dtype=other)
        twin_batches, _ = prepare_batches(twin, requests)
        raw_forward(twin.model, twin_batches[:1])
        a_t, b_t = [], []
        for _ in range(args.repeats):
            a_t.append(raw_forward(lm.model, batches))
            b_t.append(raw_forward(twin.model, twin_batches))
        times = {str(lm.dtype_): statistics.median(a_t), str(other): statistics.median(b_t)}
        row["bf16_over_fp32_speed"] = round(times["torch.float32"] / times["torch.bfloat16"], 2)
        row["fp32_raw_tok_s"] = round(tokens / times["torch.float32"], 1)
        row["bf16_raw_tok_s"] = round(tokens / times["torch.bfloat16"], 1)
        del twin
    del lm
    return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    parser.add_argument("--questions", type=int, default=64, help="number of OpinionQA questions")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing rounds (median)")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--compare-dtypes", action="store_true", help="also time bf16 vs fp32 raw forward")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    requests = load_requests(args.questions)
    env = {
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16": cpu_supports_bf16(),
        "torch": torch.__version__,
    }
    print(json.dumps(env))
    rows = []
    for name in args.models:
        row = bench_model(name, requests, args)
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| model | dtype | tokens | raw tok/s | ours tok/s | ratio |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        cells = [r["model"], r["dtype"], r["tokens"], r["raw_tok_s"], r["ours_tok_s"], r["ratio"]]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    if args.out:
        args.out.write_text(json.dumps({"env": env, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
