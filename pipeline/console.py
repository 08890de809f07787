"""User-facing output: one Rich console, progress bars with count, rate and ETA, summary tables."""

from __future__ import annotations

import time

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

# Where stderr is not a terminal (a log file, a batch queue, CI) nothing is cut to fit 80 columns:
# progress lines and tables get this many, and text is never wrapped.
LOG_WIDTH = 200

console = Console(stderr=True)
if not console.is_terminal:
    console.width = max(console.width, LOG_WIDTH)
    console.soft_wrap = True


class RateColumn(ProgressColumn):
    """Items per second since the bar started, the figure users compare between machines and settings.

    The average over the whole run, as the end-of-run summary reports it: Rich's own speed is an
    estimate over its last samples, which a burst of units finishing together (after the workers'
    start-up) inflates many times over.
    """

    def render(self, task: Task) -> Text:
        done = task.completed - task.fields.get("resumed_from", 0)
        since = task.fields.get("since")  # a time.monotonic() reading, Rich's own clock
        if since is None:
            elapsed = task.elapsed
        else:
            elapsed = (task.stop_time if task.stop_time is not None else time.monotonic()) - since
        speed = done / elapsed if elapsed and done else None
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
