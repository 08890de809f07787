"""`pipe status`: counts by status and reason for every stage ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.commands.app import app


@app.command()
def status(root: Annotated[Path, typer.Argument(help="The dataset folder.")]) -> None:
    """Counts by status and reason for every stage ledger in ROOT: where every sample went."""
    from pipeline.status import show_status

    if show_status(root):
        raise typer.Exit(1)
