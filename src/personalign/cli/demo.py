"""`personalign demo`: Fermi and the baselines on a handful of real OpinionQA respondents (a thin
shell over :func:`personalign.eval.demo.run_demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel

console = Console()


def demo_command(
    model: Annotated[
        str | None, typer.Option(help="Model for both roles (default: the bundled qwen2.5-coder-0.5b).")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Smoke test: smollm2-135m, 2 users, tiny loop (about a minute).")
    ] = False,
    users: Annotated[
        int | None, typer.Option(help="Number of respondents (default 3; 2 with --quick).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder (resumable).")] = Path("runs/demo"),
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Datasets folder (default: PERSONALIGN_DATA_DIR or ../shared/data)."),
    ] = None,
    workers: Annotated[int, typer.Option(help="Users in parallel processes.")] = 1,
    cache_file: Annotated[
        Path | None, typer.Option("--cache-file", help="LM-call cache file (default: the shared cache).")
    ] = None,
) -> None:
    """Personalize a small LLM to a few real survey respondents and compare with the baselines."""
    from personalign.cli.eval import print_summary
    from personalign.eval.demo import DEMO_PRESETS, run_demo
    from personalign.paths import DataDirNotFound, shared_data_dir

    if data_dir is None:
        try:
            shared_data_dir(required=True)
        except DataDirNotFound as err:
            console.print(
                f"[red]{err}[/red]\nThe demo needs the OpinionQA respondents "
                "(opinionqa/hwang2023_users/users.jsonl and questions.json, from eujhwang/personalized-llms) "
                "and the OpinionQA group counts (opinionqa/group_counts, from tatsu-lab/opinions_qa). "
                "Put them in a folder laid out as shared/data/README.md describes and run "
                "`personalign demo --data-dir PATH` or set PERSONALIGN_DATA_DIR=PATH."
            )
            raise typer.Exit(2) from None
    preset = "quick" if quick else "default"
    p = DEMO_PRESETS[preset]
    console.print(
        f"[bold]personalign demo[/bold]: {', '.join(p.methods)} on {users or p.users} real OpinionQA "
        "respondents, "
        f"{model or p.model}, T={p.T}, K={p.K}, {p.max_test} test questions each. Output: {out}"
    )
    try:
        res = run_demo(
            preset,
            model=model,
            users=users,
            out=out,
            data_dir=data_dir,
            workers=workers,
            cache=cache_file if cache_file is not None else True,
        )
    except FileNotFoundError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    print_summary(res.run.summary)
    if res.user_id and res.prompts:
        lines = [
            f"[bold]{i + 1}.[/bold] (train acc {e['acc']:.2f}) {e['text']}" for i, e in enumerate(res.prompts)
        ]
        console.print(Panel("\n\n".join(lines), title=f"Prompts Fermi learned for respondent {res.user_id}"))
    ex = res.example
    if ex:
        info = ex.get("info", {})
        opts = ex.get("options") or []
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

        def opt(j: int | None) -> str:
            if j is None:
                return "(no answer)"
            return f"{letters[j]}. {opts[j]}" if j < len(opts) else letters[j]

        body = [
            f"[bold]Question:[/bold] {ex.get('question', ex['question_id'])}",
            *[f"  {opt(j)}" for j in range(len(opts))],
            "[bold]Prompt RoP chose:[/bold] "
            + str(info.get("prompt") or info.get("chosen_prompt") or "(see predictions.jsonl)"),
        ]
        if ex.get("neighbours"):
            body.append("[bold]Its nearest training questions (RoP neighbours):[/bold]")
            body += [f"  ({n['similarity']:.2f}) {n['question']}" for n in ex["neighbours"]]
        if info.get("neighbour_acc") is not None:
            accs = ", ".join(f"{a:.2f}" for a in info["neighbour_acc"])
            body.append(
                f"[bold]Pool prompts' accuracy on those neighbours:[/bold] {accs} -> prompt "
                f"{info.get('prompt_index', 0) + 1}"
                + (f" (tie broken by {info['tie_break']})" if info.get("tie_break") else "")
            )
        body.append(
            f"[bold]Answer:[/bold] {opt(ex['pred'])}   [bold]respondent chose:[/bold] {opt(ex['gold'])}"
        )
        console.print(Panel("\n".join(body), title="One test question answered with Retrieval-of-Prompt"))
    console.print(f"\nreport: [bold]{res.run.report_md}[/bold]  chart: {res.run.chart_png}")


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the top-level app."""
    app.command("demo")(demo_command)
