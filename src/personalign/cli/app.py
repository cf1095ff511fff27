"""The ``personalign`` command: a thin shell over the library, one module per command group."""

from __future__ import annotations

import typer

from personalign.cli import data as data_cli
from personalign.cli import demo as demo_cli
from personalign.cli import eval as eval_cli
from personalign.cli import lm as lm_cli
from personalign.cli import models as models_cli
from personalign.cli import np as np_cli

app = typer.Typer(
    name="personalign",
    help="Personalize LLMs to individual users from a few examples (Fermi, NP-BTL).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models_cli.app, name="models")
app.add_typer(lm_cli.app, name="lm")
app.add_typer(data_cli.app, name="data")
app.add_typer(np_cli.app, name="np")
eval_cli.register(app)
demo_cli.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
