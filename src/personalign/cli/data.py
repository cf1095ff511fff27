"""`personalign data …` commands: list, info, convert, split (thin shells over personalign.data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Datasets: list, inspect, convert to the project's format, split per user.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="datasets folder (default: $PERSONALIGN_DATA_DIR or ../shared/data)"),
]
SkipOpt = Annotated[
    bool, typer.Option("--skip-invalid", help="skip invalid records (and list them) instead of failing")
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--option", "-o", help="loader option KEY=VALUE (VALUE parsed as JSON if it can be), repeatable"
    ),
]


def _parse_options(items: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--option")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
        if isinstance(out[key], list):
            out[key] = tuple(out[key])
    return out


def _load(name: str, data_dir: Path | None, skip_invalid: bool, options: dict[str, Any]) -> Any:
    from personalign.data import DataError, load_dataset
    from personalign.registry import UnknownNameError

    try:
        with console.status(f"loading {name} …"):
            return load_dataset(name, data_dir=data_dir, skip_invalid=skip_invalid, **options)
    except (DataError, UnknownNameError, ValueError, TypeError) as e:
        err_console.print(f"[bold red]error:[/] {e}")
        raise typer.Exit(2) from None


def _print_report(obj: Any, limit: int = 20) -> None:
    from personalign.data import report_of

    rep = report_of(obj)
    if rep.skipped:
        t = Table(title=f"Skipped invalid records ({len(rep.skipped)})", title_justify="left")
        t.add_column("where")
        t.add_column("why")
        for s in rep.skipped[:limit]:
            where = (s.path or "") + (f":{s.line}" if s.line is not None else "")
            if s.error.record:
                where += f" [{s.error.record}]"
            t.add_row(where, s.reason + (f"; expected {s.error.expected}" if s.error.expected else ""))
        if len(rep.skipped) > limit:
            t.add_row("…", f"{len(rep.skipped) - limit} more")
        console.print(t)
    if rep.dropped:
        t = Table(title="Dropped by design", title_justify="left")
        t.add_column("reason")
        t.add_column("records", justify="right")
        t.add_column("example")
        for reason, n in sorted(rep.dropped_counts().items()):
            example = next(d for d in rep.dropped if d.reason == reason)
            t.add_row(reason, str(n), str(example))
        console.print(t)


@app.command("list")
def list_datasets() -> None:
    """List the registered datasets."""
    from personalign.data import DATASETS

    t = Table(title="Registered datasets")
    for col in ("name", "kind", "source", "options", "description"):
        t.add_column(col)
    for name in DATASETS.names():
        d = DATASETS.get(name)
        t.add_row(name, d.kind, d.source, ", ".join(d.options), d.description)
    console.print(t)


@app.command("info")
def info(
    name: Annotated[
        str, typer.Argument(help="a registered dataset name, a project-format folder or a CSV file")
    ],
    data_dir: DataDirOpt = None,
    skip_invalid: SkipOpt = False,
    option: OptionOpt = None,
) -> None:
    """Summary statistics: users, questions, opinions per user, profile completeness, option balance."""
    from personalign.data import PreferenceData, userbase_stats

    obj = _load(name, data_dir, skip_invalid, _parse_options(option))
    if isinstance(obj, PreferenceData):
        _pairs_info(obj)
    else:
        s = userbase_stats(obj)
        t = Table(title=f"{obj.name}", show_header=False)
        t.add_column("statistic")
        t.add_column("value", justify="right")
        lo, med, mean, hi = s.opinions_per_user
        rows = [
            ("users", f"{s.users:,}"),
            ("questions (bank)", f"{s.questions:,}"),
            ("questions answered", f"{s.questions_answered:,}"),
            ("opinions", f"{s.opinions:,}"),
            ("opinions per user (min / median / mean / max)", f"{lo} / {med:g} / {mean:.1f} / {hi}"),
            (
                "options per question (min / mean / max)",
                "{} / {:.2f} / {}".format(*s.options_per_question),
            ),
            ("chance accuracy (mean 1/|options|)", f"{s.chance_accuracy:.3f}"),
            ("majority-answer share", f"{s.majority_share:.3f}"),
            ("refusal answers", f"{s.refused:,}"),
            ("opinions with a distribution", f"{s.with_distribution:,}"),
            ("users with every profile attribute", f"{s.profile_complete:,}"),
            ("users with a profile text", f"{s.profile_text:,}"),
        ]
        for r in rows:
            t.add_row(*r)
        console.print(t)
        if s.profile_attributes:
            pt = Table(title="Profile completeness", min_width=40)
            pt.add_column("attribute")
            pt.add_column("users", justify="right")
            pt.add_column("share", justify="right")
            for attr, n in s.profile_attributes.items():
                pt.add_row(attr, str(n), f"{n / s.users:.1%}")
            console.print(pt)
        bt = Table(title="Answer-option balance", caption="share of answers by option position", min_width=40)
        bt.add_column("position")
        bt.add_column("share", justify="right")
        for pos, share in s.choice_position.items():
            bt.add_row(str(pos), f"{share:.1%}")
        console.print(bt)
    _print_report(obj)


def _pairs_info(pairs: Any) -> None:
    t = Table(title=f"{pairs.name}: {len(pairs):,} preference pairs")
    for col in ("subset", "pairs", "train", "val", "test", "ties", "mean words (chosen / rejected)"):
        t.add_column(col, justify="right" if col != "subset" else "left")
    groups: dict[str, list[Any]] = {}
    for p in pairs:
        groups.setdefault(str(p.metadata.get("subset", "")), []).append(p)
    for subset, ps in sorted(groups.items()):
        splits = {k: sum(1 for p in ps if p.metadata.get("split") == k) for k in ("train", "val", "test")}
        ties = sum(1 for p in ps if p.metadata.get("tie"))
        wc = sum(len(p.chosen.split()) for p in ps) / len(ps)
        wr = sum(len(p.rejected.split()) for p in ps) / len(ps)
        t.add_row(
            subset,
            str(len(ps)),
            str(splits["train"]),
            str(splits["val"]),
            str(splits["test"]),
            str(ties),
            f"{wc:.0f} / {wr:.0f}",
        )
    console.print(t)


@app.command("convert")
def convert(
    name: Annotated[
        str, typer.Argument(help="a registered dataset name, a project-format folder or a CSV file")
    ],
    out: Annotated[Path, typer.Option("--out", help="output folder (created)")],
    data_dir: DataDirOpt = None,
    skip_invalid: SkipOpt = False,
    option: OptionOpt = None,
) -> None:
    """Convert any dataset to the project's own versioned format (manifest.json + JSONL)."""
    from personalign.data import PreferenceData, save_preference_pairs, save_userbase

    obj = _load(name, data_dir, skip_invalid, _parse_options(option))
    with console.status(f"writing {out} …"):
        if isinstance(obj, PreferenceData):
            save_preference_pairs(obj, out)
            what = f"{len(obj):,} pairs"
        else:
            save_userbase(obj, out)
            what = f"{len(obj.users):,} users, {len(obj.questions):,} questions"
    _print_report(obj)
    console.print(f"wrote {what} to [bold]{out}[/]")


@app.command("split")
def split(
    name: Annotated[
        str, typer.Argument(help="a registered opinion dataset, a project-format folder or a CSV")
    ],
    out: Annotated[Path, typer.Option("--out", help="output JSON file")],
    k: Annotated[int, typer.Option("--k", help="training opinions per user")] = 15,
    seed: Annotated[int, typer.Option("--seed", help="global seed")] = 0,
    max_test: Annotated[int | None, typer.Option("--max-test", help="at most this many test items")] = None,
    drop_refused: Annotated[bool, typer.Option("--drop-refused", help="drop refusal answers")] = False,
    data_dir: DataDirOpt = None,
    skip_invalid: SkipOpt = False,
    option: OptionOpt = None,
) -> None:
    """Write a reproducible per-user train/test split (question ids and answers) as JSON."""
    from personalign.data import UserBase, split_users
    from personalign.data.split import splits_record

    obj = _load(name, data_dir, skip_invalid, _parse_options(option))
    if not isinstance(obj, UserBase):
        err_console.print(
            f"[bold red]error:[/] {name} holds preference pairs; split needs users with opinions"
        )
        raise typer.Exit(2)
    result = split_users(obj, k=k, seed=seed, drop_refused=drop_refused, max_test=max_test)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(splits_record(result), indent=1) + "\n", encoding="utf-8")
    tmp.replace(out)
    n_train = sum(len(s.train) for s in result.splits)
    n_test = sum(len(s.test) for s in result.splits)
    console.print(
        f"{len(result.splits):,} users split ({n_train:,} train / {n_test:,} test items) -> [bold]{out}[/]"
    )
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} user(s) skipped (too few opinions):[/]")
        for uid, why in list(result.skipped.items())[:20]:
            console.print(f"  {uid}: {why}")
