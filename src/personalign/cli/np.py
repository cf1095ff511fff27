"""`personalign np …` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="np commands", no_args_is_help=True)
