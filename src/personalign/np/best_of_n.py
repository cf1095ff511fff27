"""Benchmark 3: conditional best-of-N reranking with NP-BTL (spec ``np-alignment.md`` §6).

For held-out prompts (test split; HH-helpful and UltraFeedback), sample ``N`` responses from a
bundled LM, condition NP-BTL on a simulated user's context of ``m`` test pairs, and pick
``argmax_i r(x, y_i, z_C)``. The pick is judged by the user type's **true labelling function**
(only programmatic types, ``concise``/``detailed``, have one on new text):

* ``win_vs_random``: the pick against a uniformly random candidate of the same ``N`` (win 1, tie or
  undefined 0.5; the random candidate may be the pick itself, a tie);
* ``win_vs_btl``: the pick against the unconditional BTL model's pick;
* ``best_rate``: how often no candidate is strictly preferred to the pick by the type.

Intervals are percentile bootstraps over prompts (:func:`personalign.eval.stats.bootstrap_ci`).
Generations are stored in ``generations.jsonl`` (one line per finished prompt, so a crash loses
nothing finished) and also go through the LM call cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from personalign.lm.base import GenerationRequest, Message
from personalign.np.text_users import UserType, get_user_type

_TURN = re.compile(r"\n\n(Human|Assistant):")


@dataclass(frozen=True)
class BestOfNConfig:
    """Settings of the best-of-N benchmark.

    Attributes:
        lm: LM spec for :func:`personalign.lm.factory.get_lm` (default the bundled SmolLM2-135M).
        n_max: candidates sampled per prompt; the grid uses the first ``N`` of them.
        ns: the ``N`` values reported.
        context_sizes: the ``m`` values reported.
        num_prompts: held-out prompts (half HH-helpful, half UltraFeedback where available).
        max_prompt_words: skip longer prompts (keeps CPU generation affordable).
        contexts_per_prompt: independent user contexts drawn per prompt, type and ``m`` (averaged).
        types: user types judged (need a labelling function computable on new text).
        temperature: sampling temperature (spec 0.7).
        top_p: nucleus mass (spec 0.95).
        max_tokens: new tokens per response (spec 128).
        seed: keys prompt selection, sampling seeds and contexts.
        n_bootstrap: bootstrap resamples for the intervals.
        generate_missing: sample the prompts missing from ``generations.jsonl``; ``False`` scores only
            the prompts already generated there (e.g. by an earlier or interrupted run elsewhere).
    """

    lm: str = "smollm2-135m"
    n_max: int = 8
    ns: tuple[int, ...] = (2, 4, 8)
    context_sizes: tuple[int, ...] = (0, 1, 3, 5, 10)
    num_prompts: int = 60
    max_prompt_words: int = 120
    contexts_per_prompt: int = 5
    types: tuple[str, ...] = ("concise", "detailed")
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 128
    seed: int = 0
    n_bootstrap: int = 2000
    generate_missing: bool = True


def dialogue_messages(prompt: str) -> tuple[Message, ...]:
    """An HH-style ``"\\n\\nHuman: …\\n\\nAssistant:"`` dialogue as chat messages (the final empty
    assistant turn is dropped); any other prompt becomes one user message."""
    if not _TURN.search(prompt):
        return (Message("user", prompt.strip()),)
    parts = _TURN.split(prompt)
    msgs: list[Message] = []
    head = parts[0].strip()
    for role, text in zip(parts[1::2], parts[2::2], strict=True):
        text = text.strip()
        if not text:
            continue
        r = "user" if role == "Human" else "assistant"
        if head and not msgs:
            text = f"{head}\n{text}"
        msgs.append(Message(r, text))
    return tuple(msgs)


def _stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def select_prompts(pairs: Sequence[Any], cfg: BestOfNConfig) -> list[dict[str, str]]:
    """Test-split prompts of HH-helpful and UltraFeedback pairs, at most ``max_prompt_words`` words,
    ordered by a seeded hash (independent of file order), alternating the two sources."""
    from personalign.np.text_tasks import split_of

    by_source: dict[str, dict[str, str]] = {"helpful": {}, "uf": {}}
    for p in pairs:
        if (
            p.source in by_source
            and split_of(p.prompt) == "test"
            and len(p.prompt.split()) <= cfg.max_prompt_words
        ):
            by_source[p.source].setdefault(p.prompt, p.source)
    ordered = {s: sorted(d, key=lambda x: _stable_int(cfg.seed, x)) for s, d in by_source.items()}
    out: list[dict[str, str]] = []
    i = 0
    while len(out) < cfg.num_prompts and any(i < len(v) for v in ordered.values()):
        for s in ("helpful", "uf"):
            if i < len(ordered[s]) and len(out) < cfg.num_prompts:
                x = ordered[s][i]
                out.append({"id": hashlib.sha256(x.encode()).hexdigest()[:16], "source": s, "prompt": x})
        i += 1
    return out


def read_generations(path: Path) -> dict[str, dict[str, Any]]:
    """``{prompt id: record}`` of a ``generations.jsonl`` (empty if the file does not exist)."""
    if not path.exists():
        return {}
    records = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return {rec["id"]: rec for rec in records}


class _NoLM:
    """Stands in for the LM when nothing may be generated; any call is a bug."""

    def generate(self, requests: Any) -> Any:
        raise RuntimeError("generate_missing=False but a prompt has no generations")


def generate_candidates(
    lm: Any,
    prompts: Sequence[dict[str, str]],
    cfg: BestOfNConfig,
    path: Path,
    progress: Callable[[int, int], None] | None = None,
    done: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Sample ``n_max`` responses per prompt (seeds derived from ``seed`` and the prompt id); finished
    prompts are appended to ``path`` (JSONL) and skipped when it is re-run. ``done``: the records
    already in ``path`` when the caller has read them (:func:`read_generations`)."""
    done = dict(read_generations(path) if done is None else done)
    with path.open("a") as f:
        for n, p in enumerate(prompts):
            if p["id"] not in done:
                msgs = dialogue_messages(p["prompt"])
                reqs = [
                    GenerationRequest(
                        msgs,
                        max_tokens=cfg.max_tokens,
                        temperature=cfg.temperature,
                        top_p=cfg.top_p,
                        seed=_stable_int(cfg.seed, p["id"], i) % 2**31,
                    )
                    for i in range(cfg.n_max)
                ]
                res = lm.generate(reqs)
                rec = {**p, "responses": [r.text.strip() for r in res]}
                f.write(json.dumps(rec) + "\n")
                f.flush()
                done[p["id"]] = rec
            if progress is not None:
                progress(n + 1, len(prompts))
    return [done[p["id"]] for p in prompts]


# -- metrics -------------------------------------------------------------------------------------------


def judge_matrix(
    utype: UserType, prompt: str, responses: Sequence[str], source: str = "helpful"
) -> np.ndarray:
    """``W[i, j]`` = the type's preference for response ``i`` over ``j`` (1 / 0.5 / 0); ``W[i, i] = 0.5``."""
    n = len(responses)
    w = np.full((n, n), 0.5)
    for i in range(n):
        for j in range(i + 1, n):
            w[i, j] = utype.compare(prompt, responses[i], responses[j], source)
            w[j, i] = 1.0 - w[i, j]
    return w


def pick_metrics(w: np.ndarray, pick: int, other_pick: int | None = None) -> dict[str, float]:
    """Metrics of ``pick`` under the judge matrix ``w`` (see module docstring)."""
    out = {
        "win_vs_random": float(w[pick].mean()),
        "best_rate": float(not (w[:, pick] == 1.0).any()),
    }
    if other_pick is not None:
        out["win_vs_btl"] = float(w[pick, other_pick])
    return out


def bon_grid(
    candidates: Sequence[dict[str, Any]],
    cand_features: Sequence[np.ndarray],
    np_model: Any,
    btl_model: Any,
    contexts: Callable[[int, int, int, int], np.ndarray],
    cfg: BestOfNConfig,
) -> dict[str, Any]:
    """Per type, ``N`` and ``m``: mean and bootstrap CI over prompts of each metric.

    ``contexts(type_index, prompt_index, m, c)`` returns the ``c``-th context ``(m, 2, d)`` (chosen
    first) for that prompt; ``cand_features[p]`` the ``(n_max, d)`` candidate features of prompt ``p``.
    """
    from personalign.eval.stats import bootstrap_ci

    btl_state = btl_model.condition(np.zeros((0, 2, np_model.config.feature_dim), np.float32))
    out: dict[str, Any] = {}
    for k, tname in enumerate(cfg.types):
        utype = get_user_type(tname)
        per: dict[tuple[int, int], dict[str, list[float]]] = {}
        ref: dict[int, dict[str, list[float]]] = {}
        for pi, (cand, feats) in enumerate(zip(candidates, cand_features, strict=True)):
            valid = [i for i, r in enumerate(cand["responses"]) if r.strip()]
            w_full = judge_matrix(utype, cand["prompt"], cand["responses"], cand["source"])
            btl_r = btl_state.reward(feats)
            for n in cfg.ns:
                idx = valid[:n]
                if len(idx) < 2:
                    continue
                w = w_full[np.ix_(idx, idx)]
                btl_pick = int(np.argmax(btl_r[idx]))
                r_btl = ref.setdefault(
                    n, {"btl_win_vs_random": [], "btl_best_rate": [], "oracle_win_vs_random": []}
                )
                mb = pick_metrics(w, btl_pick)
                r_btl["btl_win_vs_random"].append(mb["win_vs_random"])
                r_btl["btl_best_rate"].append(mb["best_rate"])
                r_btl["oracle_win_vs_random"].append(float(w.mean(axis=1).max()))
            for m in cfg.context_sizes:
                sums: dict[int, dict[str, float]] = {}
                for c in range(cfg.contexts_per_prompt if m > 0 else 1):
                    state = np_model.condition(contexts(k, pi, m, c))
                    r = state.reward(feats)
                    for n in cfg.ns:
                        idx = valid[:n]
                        if len(idx) < 2:
                            continue
                        w = w_full[np.ix_(idx, idx)]
                        pick = int(np.argmax(r[idx]))
                        met = pick_metrics(w, pick, int(np.argmax(btl_r[idx])))
                        acc = sums.setdefault(n, {})
                        for key, v in met.items():
                            acc[key] = acc.get(key, 0.0) + v
                n_ctx = cfg.contexts_per_prompt if m > 0 else 1
                for n, acc in sums.items():
                    slot = per.setdefault((n, m), {})
                    for key, v in acc.items():
                        slot.setdefault(key, []).append(v / n_ctx)
        table: dict[str, Any] = {}
        for (n, m), mets in sorted(per.items()):
            table.setdefault(str(n), {})[str(m)] = {
                key: bootstrap_ci(v, n_resamples=cfg.n_bootstrap, seed=cfg.seed).to_dict()
                for key, v in mets.items()
            }
        refs = {
            str(n): {
                key: bootstrap_ci(v, n_resamples=cfg.n_bootstrap, seed=cfg.seed).to_dict()
                for key, v in mets.items()
            }
            for n, mets in sorted(ref.items())
        }
        out[tname] = {"np_btl": table, "reference": refs}
    return out


def run_best_of_n(
    cfg: BestOfNConfig,
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    lm: Any = None,
    embedder: Any = None,
    data_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The whole benchmark: prompts, generation (resumable), features, contexts, grid, JSON/MD/PNG.

    ``model_dir`` is a ``np bench text`` output folder (holding ``np-btl/`` and ``btl/``) of a task that
    includes the judged types (``length`` or ``mix4``); contexts are drawn from that task's test pairs.
    """
    from personalign.embed.factory import get_embedder
    from personalign.np.episodes import episode_rng
    from personalign.np.features import FeaturizerConfig, TextFeaturizer
    from personalign.np.models import load_model
    from personalign.np.text_tasks import build_splits, featurize_pairs, get_text_task, load_text_pairs

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np_model, meta = load_model(Path(model_dir) / "np-btl")
    btl_model, _ = load_model(Path(model_dir) / "btl")
    emb = embedder if embedder is not None else get_embedder(meta.get("embedder", "minilm"))
    if meta.get("embedder_id") and emb.model_id != meta["embedder_id"]:
        raise ValueError(f"model was trained on {meta['embedder_id']} features, embedder is {emb.model_id}")
    fz = TextFeaturizer(emb, FeaturizerConfig(**meta.get("featurizer", {})))
    task = get_text_task(meta.get("task", "length"))
    missing = [t for t in cfg.types if t not in task.types]
    if missing:
        raise ValueError(f"model task {task.name!r} has no user type {missing[0]!r}; its types: {task.types}")
    pairs = load_text_pairs(data_dir, task.sources)
    prompts = select_prompts(pairs, cfg)
    done = read_generations(out / "generations.jsonl")
    if not cfg.generate_missing:
        prompts = [p for p in prompts if p["id"] in done]
        if not prompts:
            raise FileNotFoundError(f"{out / 'generations.jsonl'}: no generated prompts to score")
    log(f"best-of-N: {len(prompts)} prompts, N up to {cfg.n_max}, LM {cfg.lm}")
    if lm is None and not cfg.generate_missing:
        lm = _NoLM()
    if lm is None:
        from personalign.lm.factory import get_lm

        lm = get_lm(cfg.lm, batch_invariant=False, batch_size=cfg.n_max)
    cands = generate_candidates(lm, prompts, cfg, out / "generations.jsonl", progress, done)
    cand_feats = [
        fz.features(
            [c["prompt"]] * len(c["responses"]), [r if r.strip() else "(empty)" for r in c["responses"]]
        )
        for c in cands
    ]
    # contexts: test-split pairs of the length task, never from the prompt being answered
    feats = featurize_pairs(pairs, fz)
    test = build_splits(task, pairs, feats)["test"]
    type_idx = {t: task.types.index(t) for t in cfg.types}
    prompt_of = [p.prompt for p in test.pairs]

    def contexts(k: int, pi: int, m: int, c: int) -> np.ndarray:
        tk = type_idx[cfg.types[k]]
        avail = [i for i in test.pool.defined(tk) if prompt_of[i] != cands[pi]["prompt"]]
        rng = episode_rng(cfg.seed, "test", 31, tk, pi, m, c)
        ids = np.asarray(avail)[rng.choice(len(avail), size=m, replace=False)] if m else np.zeros(0, np.int64)
        return test.pool.ordered(ids.astype(np.int64), tk)

    grid = bon_grid(cands, cand_feats, np_model, btl_model, contexts, cfg)
    lengths = [len(r.split()) for c in cands for r in c["responses"]]
    doc = {
        "config": {
            **asdict(cfg),
            "ns": list(cfg.ns),
            "context_sizes": list(cfg.context_sizes),
            "types": list(cfg.types),
        },
        "model_dir": str(model_dir),
        "embedder": emb.model_id,
        "num_prompts": len(cands),
        "response_words": {
            "mean": float(np.mean(lengths)),
            "min": int(min(lengths)),
            "max": int(max(lengths)),
        },
        "empty_responses": int(sum(not r.strip() for c in cands for r in c["responses"])),
        "results": grid,
        "note": "Judged by the simulated user type's true labelling function (word counts); "
        "users are simulated.",
    }
    (out / "bon.json").write_text(json.dumps(doc, indent=2))
    (out / "bon.md").write_text(bon_markdown(doc))
    plot_bon(doc, out / "bon.png")
    return doc


def bon_markdown(doc: dict[str, Any]) -> str:
    """Win rate vs random (%) by ``N`` (rows) and ``m`` (columns) per type, plus vs-BTL and best-rate."""
    cfg = doc["config"]
    lines = [
        f"{doc['num_prompts']} held-out prompts, N ≤ {cfg['n_max']} samples from `{cfg['lm']}` "
        f"(T={cfg['temperature']}, top-p={cfg['top_p']}, ≤{cfg['max_tokens']} tokens); "
        f"{cfg['contexts_per_prompt']} contexts per prompt and m; 95% bootstrap CIs over prompts.",
        "",
    ]
    for t, res in doc["results"].items():
        for metric, title in (
            ("win_vs_random", "win rate vs a random candidate"),
            ("win_vs_btl", "win rate vs BTL's pick"),
            ("best_rate", "pick is the type's best"),
        ):
            lines += [
                f"**{t}: {title} (%)**",
                "",
                "| N | "
                + " | ".join(f"m={m}" for m in cfg["context_sizes"])
                + " | BTL pick | best possible |",
                "|---|" + "---|" * (len(cfg["context_sizes"]) + 2),
            ]
            for n in map(str, cfg["ns"]):
                row = res["np_btl"].get(n, {})
                cells = []
                for m in map(str, cfg["context_sizes"]):
                    s = row.get(m, {}).get(metric)
                    cells.append(
                        f"{100 * s['mean']:.1f} [{100 * s['low']:.1f}, {100 * s['high']:.1f}]" if s else "–"
                    )
                r = res["reference"].get(n, {})
                btl = r.get("btl_" + metric) if metric != "win_vs_btl" else None
                best = r.get("oracle_win_vs_random") if metric == "win_vs_random" else None
                cells.append(f"{100 * btl['mean']:.1f}" if btl else "–")
                cells.append(f"{100 * best['mean']:.1f}" if best else "–")
                lines.append(f"| {n} | " + " | ".join(cells) + " |")
            lines.append("")
    return "\n".join(lines) + "\n"


def plot_bon(doc: dict[str, Any], path: Path) -> None:
    """Win rate vs a random candidate against ``m``, one line per ``N``, one panel per type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = doc["config"]
    types = list(doc["results"])
    fig, axes = plt.subplots(1, len(types), figsize=(4 * len(types), 3.2), squeeze=False)
    for ax, t in zip(axes[0], types, strict=True):
        for n in map(str, cfg["ns"]):
            row = doc["results"][t]["np_btl"].get(n)
            if not row:
                continue
            ms = [m for m in cfg["context_sizes"] if str(m) in row]
            mean = [100 * row[str(m)]["win_vs_random"]["mean"] for m in ms]
            lo = [100 * row[str(m)]["win_vs_random"]["low"] for m in ms]
            hi = [100 * row[str(m)]["win_vs_random"]["high"] for m in ms]
            ax.plot(ms, mean, "o-", label=f"N={n}")
            ax.fill_between(ms, lo, hi, alpha=0.15)
        ax.axhline(50, color="grey", ls="--")
        ax.set_title(f"{t}: NP-BTL pick vs random")
        ax.set_xlabel("context pairs m")
        ax.set_ylabel("win rate (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_bon_benchmark(
    out: Path,
    *,
    seeds: Sequence[int] = (0,),
    quick: bool = False,
    progress: Callable[[str, float, float], None] | None = None,
    model_dir: str | Path | None = None,
) -> dict[str, Any]:
    """``personalign np bench bon``: :func:`run_best_of_n` with the ``mix4`` (or ``length``) models of
    ``np bench text`` (default ``model_dir``: ``<out>/../text/mix4``). ``quick``: 6 prompts, N ≤ 4."""
    out = Path(out)
    if model_dir is None:
        for cand in (out.parent / "text" / "mix4", out.parent / "text" / "length"):
            if (cand / "np-btl" / "model.json").is_file():
                model_dir = cand
                break
        else:
            raise FileNotFoundError(
                f"no text models under {out.parent / 'text'}; run `personalign np bench text --out "
                f"{out.parent / 'text'}` first (or pass model_dir)"
            )
    cfg = BestOfNConfig(seed=seeds[0] if seeds else 0)
    if quick:
        cfg = BestOfNConfig(
            seed=cfg.seed, num_prompts=6, n_max=4, ns=(2, 4), contexts_per_prompt=2, n_bootstrap=500
        )
    prog = (lambda d, t: progress("generate", d, t)) if progress is not None else None
    doc = run_best_of_n(cfg, model_dir, out, progress=prog)
    return {k: doc[k] for k in ("num_prompts", "embedder", "results")}
