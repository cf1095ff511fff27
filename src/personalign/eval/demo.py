"""The ``personalign demo``: Fermi and the baselines on a handful of real OpinionQA respondents.

:func:`run_demo` evaluates every demo method on a few real people from
``opinionqa/hwang2023_users`` (the ``complete``-profile respondents) with the default bundled model
on CPU, writes the usual report, and returns what the command prints: the accuracy table, one
user's learned prompt pool, and one test question answered with the prompt Retrieval-of-Prompt
chose for it. :data:`DEMO_PRESETS` holds the sizes, chosen so that the default preset finishes in
under 15 minutes on 2 CPU cores (measured; see ``docs/results-fermi.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personalign.eval.runner import RunResult, evaluate, pair_dir

#: In this order so that ``fermi`` pays for its own optimization and ``fermi-no-rop`` (the same
#: optimization, answered with the single best prompt) reuses it from the LM-call cache.
DEMO_METHODS = (
    "zero-shot",
    "profile",
    "few-shot",
    "profile+few-shot",
    "fermi",
    "fermi-no-rop",
    "opro",
    "group-majority",
)


@dataclass(frozen=True)
class DemoPreset:
    """Sizes of a demo run.

    Attributes:
        model: answering and optimizer model.
        users: number of respondents.
        max_test: test questions per respondent.
        T: Fermi/OPRO scoring rounds.
        K: candidate prompts per round.
        methods: methods to run.
    """

    model: str
    users: int
    max_test: int
    T: int
    K: int
    methods: tuple[str, ...] = DEMO_METHODS
    options: dict[str, Any] = field(default_factory=dict)


#: Small-model mode (one sampled call per candidate, pre-filled ``<prompt>You are``, stop at
#: ``</prompt>``) is the spec's default for models under 2B; the optimizer's reply is capped.
_SMALL = {"config": "small_model", "retries": 1}

DEMO_PRESETS: dict[str, DemoPreset] = {
    # default bundled model, 2 CPU cores, < 15 minutes
    "default": DemoPreset(
        model="qwen2.5-coder-0.5b", users=3, max_test=10, T=3, K=2, options={**_SMALL, "max_new_tokens": 64}
    ),
    # smoke test: the 135M model, two users, tiny loop
    "quick": DemoPreset(
        model="smollm2-135m",
        users=2,
        max_test=6,
        T=2,
        K=1,
        options={**_SMALL, "retries": 0, "max_new_tokens": 48},
    ),
}


@dataclass
class DemoResult:
    """A finished demo: the run and the excerpts to show."""

    run: RunResult
    user_id: str | None
    prompts: list[dict[str, Any]]
    example: dict[str, Any] | None


def learned_prompts(out: Path, user_id: str, method: str = "fermi") -> list[dict[str, Any]]:
    """The prompt pool ``method`` learned for ``user_id`` (text, training accuracy, origin), best
    first, read from the Fermi run state (``state.json``: the memory as births into the archive);
    empty if there is none."""
    state_dir = pair_dir(out, method, user_id) / "state"
    files = sorted(state_dir.rglob("state.json")) if state_dir.is_dir() else []
    for f in files:
        state = json.loads(f.read_text())
        births = {e.get("birth"): e for e in state.get("archive", []) if isinstance(e, dict)}
        items = []
        for b in state.get("memory", []):
            entry = births.get(b)
            if entry is None:
                continue
            spec = entry.get("spec", {})
            text = spec.get("text") if isinstance(spec, dict) else None
            if text:
                items.append({"text": text, "acc": entry.get("acc"), "origin": spec.get("origin")})
        if items:
            return items
    return []


def rop_example(out: Path, user_id: str, questions: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """One Fermi test prediction whose prompt Retrieval-of-Prompt chose (prefer one that differs
    from the pool's best prompt and was answered correctly)."""
    f = pair_dir(out, "fermi", user_id) / "predictions.jsonl"
    if not f.is_file():
        return None
    recs = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    if not recs:
        return None

    def rank(r: dict[str, Any]) -> tuple[int, int]:
        info = r.get("info", {})
        return (int(info.get("prompt_index", 0) != 0), int(bool(r.get("correct"))))

    best = max(recs, key=rank)
    if questions is not None and best["question_id"] in questions:
        q = questions[best["question_id"]]
        best = {**best, "question": q.text, "options": list(q.options)}
        ids = best.get("info", {}).get("neighbour_question_ids") or []
        sims = best.get("info", {}).get("neighbour_similarities") or []
        best["neighbours"] = [
            {"question": questions[i].text if i in questions else i, "similarity": s}
            for i, s in zip(ids, sims, strict=False)
        ]
    return best


def run_demo(
    preset: str = "default",
    *,
    model: str | None = None,
    users: int | None = None,
    out: str | Path = "runs/demo",
    data_dir: str | Path | None = None,
    workers: int = 1,
    cache: bool | str | Path = True,
    progress: bool = True,
) -> DemoResult:
    """Run the demo (see module docstring); ``model``/``users`` override the preset."""
    p = DEMO_PRESETS[preset]
    out = Path(out)
    run = evaluate(
        "opinionqa-users",
        list(p.methods),
        users=users or p.users,
        user_set="complete",
        train_k=15,
        max_test=p.max_test,
        model=model or p.model,
        out=out,
        seed=0,
        workers=workers,
        method_options={"T": p.T, "K": p.K, **p.options},
        data_dir=data_dir,
        cache=cache,
        progress=progress,
    )
    user_id = run.summary["users"][0] if run.summary["users"] else None
    prompts = learned_prompts(out, user_id) if user_id else []
    example = None
    if user_id:
        from personalign.eval.runner import EvalConfig, load_userbase

        cfg = EvalConfig.from_dict(json.loads((out / "run.json").read_text())["config"])
        example = rop_example(out, user_id, dict(load_userbase(cfg).questions))
    return DemoResult(run, user_id, prompts, example)
