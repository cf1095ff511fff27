"""`personalign np …` commands: train, eval, bench and score NP-BTL reward models.

A thin shell over :mod:`personalign.np` (runs, benchmark, tasks registry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(
    help="NP-BTL few-shot steerable reward models: train, evaluate, benchmark, score.", no_args_is_help=True
)
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )


def _fail(err: Exception) -> None:
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
    raise typer.Exit(code=2)


def _known_errors() -> tuple[type[Exception], ...]:
    from personalign.data.errors import DataError
    from personalign.np.errors import NPInputError
    from personalign.registry import UnknownNameError

    return (NPInputError, DataError, UnknownNameError, FileNotFoundError)


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise typer.BadParameter(f"{what}: expected comma-separated integers, got {text!r}") from err


@app.command()
def train(
    task: Annotated[str, typer.Option(help="registered task: synthetic, hh, uf …")] = "synthetic",
    out: Annotated[Path, typer.Option(help="run folder to write (model, checkpoints, metrics)")] = Path(
        "runs/np"
    ),
    model: Annotated[str, typer.Option(help="np-btl | mixture-btl | btl | oracle")] = "np-btl",
    oracle_type: Annotated[int | None, typer.Option(help="user type index for --model oracle")] = None,
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    epochs: Annotated[int | None, typer.Option(help="override the task's epochs")] = None,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many optimiser steps")] = None,
    lr: Annotated[float | None, typer.Option(help="override the learning rate")] = None,
    val_episodes: Annotated[int | None, typer.Option(help="size of the fixed validation set")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda")] = "auto",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    num_workers: Annotated[int, typer.Option(help="DataLoader workers (results do not depend on it)")] = 0,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoints/last.*")] = False,
    latent: Annotated[bool, typer.Option(help="NP-BTL latent variant (KL(q(z|T) || q(z|C)))")] = False,
    beta_kl: Annotated[
        float | None, typer.Option(help="latent variant: KL weight (default 1; 0.1 trains)")
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="evaluate on the test grid afterwards")
    ] = True,
    data_dir: Annotated[Path | None, typer.Option(help="shared datasets folder (text tasks)")] = None,
) -> None:
    """Meta-train a reward model on a task and write the run folder OUT."""
    from personalign.np.runs import train_run

    overrides: dict[str, Any] = {"device": device, "num_workers": num_workers}
    for name, value in (
        ("epochs", epochs),
        ("max_steps", max_steps),
        ("lr", lr),
        ("num_threads", threads),
        ("val_episodes", val_episodes),
    ):
        if value is not None:
            overrides[name] = value
    try:
        with _progress() as bar:
            tid = bar.add_task(f"train {task}/{model}", total=None, info="")

            def hook(info: dict[str, Any]) -> None:
                extra = f"loss {info['loss']:.4f}"
                if "val_nll" in info:
                    extra += f"  val nll {info['val_nll']:.4f} acc {100 * info['val_acc']:.1f}%"
                bar.update(tid, completed=info["step"], total=info["total"], info=extra)

            tr = train_run(
                task,
                out,
                model=model,
                seed=seed,
                oracle_type=oracle_type,
                overrides=overrides,
                data_dir=data_dir,
                resume=resume,
                progress=hook,
                model_overrides=(
                    {"latent": True, **({"beta_kl": beta_kl} if beta_kl is not None else {})}
                    if latent
                    else None
                ),
            )
        console.print(
            f"trained {tr.step_} steps in {tr.train_seconds_:.0f}s (best val NLL {tr.best_val_nll_:.4f} "
            f"at step {tr.best_step_}) -> {out}"
        )
        if evaluate:
            _evaluate(out, None, None, 0, data_dir)
    except _known_errors() as err:
        _fail(err)


def _evaluate(
    folder: Path,
    episodes: int | None,
    context_sizes: str | None,
    seed: int,
    data_dir: Path | None,
    diagnostics: bool = False,
) -> None:
    from personalign.np.evaluate import DEFAULT_CONTEXT_SIZES
    from personalign.np.runs import evaluate_run

    sizes = _ints(context_sizes, "--context-sizes") if context_sizes else list(DEFAULT_CONTEXT_SIZES)
    with _progress() as bar:
        tid = bar.add_task("evaluate", total=None, info="")
        metrics = evaluate_run(
            folder,
            context_sizes=sizes,
            episodes=episodes,
            seed=seed,
            data_dir=data_dir,
            progress=lambda d, t: bar.update(tid, completed=d, total=t),
            diagnostics=diagnostics,
        )
    table = Table(title=f"{metrics['task']} / {metrics['model']}: accuracy (%) by context size")
    table.add_column("type")
    for m in sizes:
        table.add_column(f"m={m}", justify="right")
    for name, row in metrics["per_type"].items():
        table.add_row(name, *(f"{100 * row[str(m)]['mean']:.1f}" for m in sizes))
    table.add_row("average", *(f"{100 * metrics['average'][str(m)]['mean']:.1f}" for m in sizes))
    if "bayes" in metrics:
        table.add_row("Bayes-optimal", *(f"{100 * metrics['bayes'][str(m)]:.1f}" for m in sizes))
    Console().print(table)
    for name, row in metrics.get("diagnostics", {}).get("mixed_context", {}).items():
        cells = ", ".join(
            f"{'no context' if k == 'm=0' else 'rho=' + k}: {100 * v:.1f}" for k, v in row.items()
        )
        Console().print(f"{name} targets, m=10 context partly from the next type: {cells}")
    console.print(f"wrote {folder / 'metrics.json'}, metrics.md, acc_vs_context.png")


@app.command("eval")
def eval_(
    folder: Annotated[Path, typer.Argument(help="run folder written by `np train`")],
    episodes: Annotated[int | None, typer.Option(help="episodes per (type, m) cell (task default)")] = None,
    context_sizes: Annotated[str | None, typer.Option(help="comma-separated, default 0..10")] = None,
    seed: Annotated[int, typer.Option(help="evaluation seed (episodes are identical across models)")] = 0,
    data_dir: Annotated[Path | None, typer.Option(help="shared datasets folder (text tasks)")] = None,
    diagnostics: Annotated[
        bool, typer.Option(help="also mixed-context / context-swap accuracies at m=10 (pool-based tasks)")
    ] = False,
) -> None:
    """Accuracy by user type and context size on test targets disjoint from the context."""
    try:
        _evaluate(folder, episodes, context_sizes, seed, data_dir, diagnostics)
    except _known_errors() as err:
        _fail(err)


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help="synthetic | text | bon (registered benchmarks)")],
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/np-bench"),
    seeds: Annotated[
        str | None,
        typer.Option(help="comma-separated training seeds (default: the benchmark's; synthetic 0,1,2)"),
    ] = None,
    quick: Annotated[bool, typer.Option(help="smoke run: few steps, few episodes (not a result)")] = False,
    oracles: Annotated[bool, typer.Option(help="synthetic: also train the per-type oracles")] = False,
    episodes: Annotated[int | None, typer.Option(help="synthetic: episodes per (type, m) cell")] = None,
    task: Annotated[
        str | None, typer.Option(help="text: the text task (mix4, hh_flip, length, uf, style4; default mix4)")
    ] = None,
) -> None:
    """Run a registered benchmark and write JSON + Markdown + PNG into OUT."""
    from personalign.np.tasks import BENCHES

    try:
        fn = BENCHES.get(name)
        kwargs: dict[str, Any] = {"quick": quick}
        if seeds is not None:
            kwargs["seeds"] = _ints(seeds, "--seeds")
        if name == "synthetic":
            kwargs.update(oracles=oracles, episodes=episodes)
        if task is not None:
            if name != "text":
                raise typer.BadParameter(f"--task applies to the text benchmark only, not {name!r}")
            from personalign.np.text_tasks import get_text_task

            kwargs["task"] = get_text_task(task).name
        with _progress() as bar:
            tasks: dict[str, Any] = {}

            def progress(desc: str, completed: float, total: float) -> None:
                if desc not in tasks:
                    tasks[desc] = bar.add_task(desc, total=total, info="")
                bar.update(tasks[desc], completed=completed, total=total)

            summary = fn(out, progress=progress, **kwargs)
        Console().print_json(json.dumps(summary))
        md = out / f"{name}.md"
        if md.is_file():
            Console().print(md.read_text())
    except _known_errors() as err:
        _fail(err)


@app.command()
def score(
    model: Annotated[Path, typer.Option(help="run folder written by `np train`")],
    context: Annotated[Path, typer.Option(help="JSONL of the user's known choices (chosen/rejected)")],
    pairs: Annotated[Path, typer.Option(help="JSONL of pairs to score (a/b)")],
    out: Annotated[Path | None, typer.Option(help="write results as JSONL here (default: stdout)")] = None,
) -> None:
    """Condition the model on one user's context pairs, then score new pairs: P(a > b) and rewards."""
    import numpy as np

    from personalign.np.pairs_io import read_pairs
    from personalign.np.runs import load_run
    from personalign.np.tasks import get_task

    try:
        net, meta = load_run(model)
        dim = net.config.feature_dim
        ctx = read_pairs(context, ("chosen", "rejected"), dim=dim, allow_empty=True)
        tgt = read_pairs(pairs, ("a", "b"), dim=dim, allow_empty=False)
        featurizer = None
        if not ctx.numeric or not tgt.numeric:
            featurizer = get_task(meta["task"]).featurizer()
            if featurizer is None:
                raise ValueError(f"task {meta['task']!r} has numeric features; the files contain text")
        if ctx.numeric:
            ctx_arg: Any = (
                np.asarray(ctx.first, dtype=np.float32).reshape(-1, dim),
                np.asarray(ctx.second, dtype=np.float32).reshape(-1, dim),
            )
        else:
            ctx_arg = list(zip(ctx.prompts, ctx.first, ctx.second, strict=True))
        state = net.condition(ctx_arg, featurizer=featurizer)
        if tgt.numeric:
            a, b = np.asarray(tgt.first, dtype=np.float32), np.asarray(tgt.second, dtype=np.float32)
            p = state.preference_probability(a, b)
            ra, rb = state.reward(a), state.reward(b)
        else:
            p = state.preference_probability(tgt.prompts, tgt.first, tgt.second)
            ra, rb = state.reward(tgt.prompts, tgt.first), state.reward(tgt.prompts, tgt.second)
        rows = [
            {
                "id": i,
                "p_a_over_b": float(pp),
                "prefers": "a" if pp > 0.5 else "b",
                "reward_a": float(x),
                "reward_b": float(y),
            }
            for i, pp, x, y in zip(tgt.ids, p, ra, rb, strict=True)
        ]
        text = "\n".join(json.dumps(r) for r in rows) + "\n"
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            console.print(f"scored {len(rows)} pairs with {state.num_context} context pairs -> {out}")
        else:
            typer.echo(text, nl=False)
    except (*_known_errors(), ValueError) as err:
        _fail(err)
