"""`personalign eval`: evaluate methods on a dataset's users (a thin shell over
:func:`personalign.eval.runner.evaluate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()


def parse_users(users: str | None) -> int | list[str] | None:
    """``"30"`` → 30 users; ``"53,71"`` → those user ids; ``None`` → all."""
    if users is None or users.strip() == "":
        return None
    users = users.strip()
    if users.isdigit() and "," not in users:
        return int(users)
    return [u.strip() for u in users.split(",") if u.strip()]


def parse_options(config: str | None, T: int | None, K: int | None, L: int | None, option: list[str]) -> dict:
    """Method options from the named config, the common Fermi knobs and ``key=value`` pairs
    (values parsed as JSON when they are JSON, else kept as text)."""
    opts: dict[str, Any] = {}
    if config:
        opts["config"] = config
    for key, val in (("T", T), ("K", K), ("L", L)):
        if val is not None:
            opts[key] = val
    for item in option:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"--option expects key=value, got {item!r}")
        try:
            opts[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            opts[key.strip()] = raw
    return opts


def eval_command(
    dataset: Annotated[str, typer.Option(help="Registered dataset (opinionqa-users, globalopinionqa, …).")],
    methods: Annotated[str, typer.Option(help="Comma-separated method names, e.g. zero-shot,profile,fermi.")],
    users: Annotated[
        str | None, typer.Option(help="Number of users (seeded draw) or comma-separated ids.")
    ] = None,
    user_set: Annotated[str | None, typer.Option(help="Named user subset (complete, strat10, all).")] = None,
    train_k: Annotated[int, typer.Option("--train-k", help="Training opinions per user.")] = 15,
    max_test: Annotated[
        int | None, typer.Option(help="Cap on test items per user (default: 50 for country/group tasks).")
    ] = None,
    model: Annotated[
        str, typer.Option(help="Answering model (registered name or path).")
    ] = "qwen2.5-coder-0.5b",
    optimizer_model: Annotated[
        str | None, typer.Option("--optimizer-model", help="Optimizer model (default: the answering model).")
    ] = None,
    backend: Annotated[str | None, typer.Option(help="LM backend override.")] = None,
    embedder: Annotated[
        str, typer.Option(help="Embedder for retrieval (minilm, hashing, or a folder).")
    ] = "minilm",
    out: Annotated[Path, typer.Option(help="Output folder (resumable).")] = Path("runs/eval"),
    workers: Annotated[int, typer.Option(help="Users evaluated in parallel processes.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option(help="Torch threads per process (default: cores / workers; 1 on a busy machine)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Global seed.")] = 0,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Datasets folder (default: PERSONALIGN_DATA_DIR or ../shared/data)."),
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="Named Fermi config: default, faithful or small_model.")
    ] = None,
    T: Annotated[int | None, typer.Option("--T", help="Fermi/OPRO scoring rounds.")] = None,
    K: Annotated[int | None, typer.Option("--K", help="Fermi/OPRO candidates per round.")] = None,
    L: Annotated[int | None, typer.Option("--L", help="Fermi/OPRO memory size.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Extra method option key=value (repeatable).")
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Do not use the LM-call cache.")] = False,
    force: Annotated[
        bool, typer.Option(help="Resume into a folder made with another configuration.")
    ] = False,
    plugin: Annotated[
        list[str] | None, typer.Option(help="Module to import in every worker (registers extra methods).")
    ] = None,
    report_only: Annotated[
        bool, typer.Option("--report-only", help="Rebuild the report from what OUT holds (runs nothing).")
    ] = False,
) -> None:
    """Evaluate methods on real users: per-user predictions, intervals, paired tests, cost, report."""
    from personalign.eval.runner import RunConfigMismatch, evaluate
    from personalign.registry import UnknownNameError

    if report_only:
        from personalign.eval.report import summarize, write_report

        if not (out / "run.json").is_file():
            console.print(f"[red]error:[/red] {out} holds no run (no run.json)")
            raise typer.Exit(2)
        summary = summarize(out, methods=[m.strip() for m in methods.split(",") if m.strip()] or None)
        md, png = write_report(out, summary)
        print_summary(summary)
        console.print(f"\nreport: [bold]{md}[/bold]  chart: {png}")
        return

    method_list = [m.strip() for m in methods.split(",") if m.strip()]
    try:
        result = evaluate(
            dataset,
            method_list,
            users=parse_users(users),
            user_set=user_set,
            train_k=train_k,
            max_test=max_test,
            model=model,
            optimizer_model=optimizer_model,
            backend=backend,
            embedder=embedder,
            out=out,
            seed=seed,
            workers=workers,
            method_options=parse_options(config, T, K, L, option or []),
            data_dir=data_dir,
            cache=not no_cache,
            force=force,
            plugins=tuple(plugin or ()),
            threads=threads,
        )
    except (UnknownNameError, RunConfigMismatch, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    print_summary(result.summary)
    console.print(
        f"\nreport: [bold]{result.report_md}[/bold]  chart: {result.chart_png}  (all files under {out})"
    )


def print_summary(summary: dict[str, Any]) -> None:
    """The accuracy table of a summary, on the console."""
    from rich.table import Table

    base = summary["baseline"]
    table = Table(
        title=f"{summary['config']['dataset']}: {summary['n_users']} users, {summary['config']['model']}"
    )
    for col in ("method", "accuracy % [95% CI]", f"Δ {base} − method", "p (Holm)", "calls/user", "s/user"):
        table.add_column(col)

    def ci(d: dict | None) -> str:
        if not d or d.get("mean") is None:
            return "–"
        return f"{100 * d['mean']:.1f} [{100 * d['low']:.1f}, {100 * d['high']:.1f}]"

    for name, m in summary["methods"].items():
        p = summary["paired"].get(name)
        c = m["cost_per_user"]
        calls = (c.get("answer_calls") or 0) + (c.get("optimizer_calls") or 0)
        table.add_row(
            name + (" †" if m.get("note") else ""),
            ci(m["accuracy"]),
            ci(p["diff"]) if p else "–",
            f"{p['p_holm']:.3f}" if p and p.get("p_holm") is not None else "–",
            f"{calls:.0f}",
            f"{c.get('wall_seconds') or 0:.1f}",
        )
    console.print(table)
    for name, m in summary["methods"].items():
        if m.get("note"):
            console.print(f"† {name}: {m['note']}")


def register(app: typer.Typer) -> None:
    """Add the `eval` command to the top-level app."""
    app.command("eval", no_args_is_help=True)(eval_command)
