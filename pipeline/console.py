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


def task_elapsed(task: Task) -> float | None:
    """Seconds since the bar's start (`since`: the session's start, else Rich's own start)."""
    since = task.fields.get("since")  # a time.monotonic() reading, Rich's own clock
    if since is None:
        return task.elapsed
    return (task.stop_time if task.stop_time is not None else task.get_time()) - since


def task_rate(task: Task) -> float | None:
    """Items per second since the bar started (`since`, else Rich's start), this run's items only.

    The average over the whole run, as the end-of-run summary reports it: Rich's own speed is an
    estimate over its last samples, which a burst of units finishing together (after the workers'
    start-up) inflates many times over. The ETA uses the same figure, so the columns agree.
    """
    done = task.completed - task.fields.get("resumed_from", 0)
    elapsed = task_elapsed(task)
    return done / elapsed if elapsed and done else None


def task_eta(task: Task) -> float | None:
    """Seconds left at `task_rate`: (total - completed) / rate."""
    rate = task_rate(task)
    if rate is None or task.total is None:
        return None
    return max(task.total - task.completed, 0) / rate


class RateColumn(ProgressColumn):
    """Items per second since the bar started (see `task_rate`), the figure users compare between runs."""

    def render(self, task: Task) -> Text:
        speed = task_rate(task)
        return Text("-- it/s" if speed is None else f"{speed:,.1f} it/s", style="progress.data.speed")


class ElapsedColumn(ProgressColumn):
    """Time since the bar's start: the time the rate column's figure is over."""

    def render(self, task: Task) -> Text:
        elapsed = task_elapsed(task)
        return Text("-:--:--" if elapsed is None else format_seconds(elapsed), style="progress.elapsed")


class EtaColumn(ProgressColumn):
    """Time left at the rate the rate column shows (Rich's own ETA uses its sampled speed)."""

    def render(self, task: Task) -> Text:
        eta = task_eta(task)
        return Text("-:--:--" if eta is None else format_seconds(eta), style="progress.remaining")


def format_seconds(seconds: float) -> str:
    """H:MM:SS, as Rich's elapsed column writes it."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def plain_progress_line(task: Task) -> str:
    """One progress line for a log (no bar, no padding): count, rate, elapsed and ETA, all from one rate."""
    rate, eta = task_rate(task), task_eta(task)
    count = f"{int(task.completed)}" + (f"/{int(task.total)}" if task.total is not None else "")
    elapsed = task_elapsed(task) or 0.0
    rate_text = "-- it/s" if rate is None else f"{rate:,.1f} it/s"
    return f"{task.description}: {count} done, {rate_text}, elapsed {format_seconds(elapsed)}, eta {'-:--:--' if eta is None else format_seconds(eta)}"


def make_progress(get_time=None) -> Progress:  # noqa: ANN001 - a clock, for tests
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        ElapsedColumn(),
        TextColumn("eta"),
        EtaColumn(),
        console=console,
        transient=False,
        get_time=get_time,
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
