"""`pipe status ROOT`: where every sample of a dataset went, stage by stage."""

from __future__ import annotations

from pathlib import Path

from manifests.ledger import Ledger, LedgerError, rows_by_status
from manifests.schema import LEDGERS
from pipeline.console import console, counts_table
from pipeline.errors import PipeError


def show_status(root: Path) -> int:
    """Print one table per stage ledger; returns the number of unreadable ledgers."""
    if not root.is_dir():
        raise PipeError(f"dataset folder not found: {root}")
    found = unreadable = 0
    for schema in LEDGERS:
        ledger = Ledger(root, schema)
        if not ledger.exists():
            continue
        found += 1
        try:
            table = ledger.read()
        except LedgerError as exc:
            console.print(f"[red]error:[/] {exc}")
            unreadable += 1
            continue
        title = f"{schema.stage}  ({ledger.path.name}, {schema.id_column} is the input id)"
        console.print(counts_table(title, rows_by_status(table)))
        if ledger.pending_parts():
            console.print(
                f"[yellow]  {len(ledger.pending_parts())} part file(s) from an unfinished run are included; "
                "run the stage again to finish it[/]"
            )
    if not found:
        console.print(f"no ledgers in {root} yet: run `pipe prepare SOURCE {root}` first")
    return unreadable
