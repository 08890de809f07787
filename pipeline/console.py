"""User-facing output: one Rich console, progress bars with count, rate and ETA, summary tables."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, the figure users compare between machines and settings."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- it/s" if speed is None else f"{speed:,.1f} it/s", style="progress.data.speed")


def make_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def counts_table(title: str, rows: list[tuple[str, str, int]]) -> Table:
    """A status | reason | count table; rows as produced by `manifests.ledger.rows_by_status`."""
    table = Table(title=title, title_justify="left")
    table.add_column("status")
    table.add_column("reason")
    table.add_column("count", justify="right")
    styles = {"ok": "green", "rejected": "yellow", "failed": "red"}
    for status, reason, count in rows:
        table.add_row(Text(status, style=styles.get(status, "")), reason or "-", f"{count:,}")
    table.add_row("[bold]total", "", f"[bold]{sum(r[2] for r in rows):,}")
    return table
