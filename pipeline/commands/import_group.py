"""The `pipe import` command group, which `import pairs` and `import booru` register on."""

from __future__ import annotations

import typer

from pipeline.commands.app import app

import_app = typer.Typer(
    name="import",
    help="Bring existing data into a dataset folder, with the same ledgers and resume as every stage.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(import_app, name="import")
