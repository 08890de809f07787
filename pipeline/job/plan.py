"""`pipe run --dry-run`: which stages of a job have work, and how much, read from the ledgers; nothing is written.

Counts are of what is on disk now: a stage after one that still has work will also get that stage's
output (the plan says so), and a crawl's new posts are known only once the board is asked.
"""

from __future__ import annotations

from rich.table import Table

from pipeline.job.spec import JobSpec, StageSpec


def stage_work(job: JobSpec, stage: StageSpec) -> tuple[bool | None, str]:
    """(has work: True, False, or None when only running it can tell; what): the stage's own plan hook."""
    return stage.entry.hook("plan")(job, stage)


def plan_table(job: JobSpec, stages: list[StageSpec]) -> Table:
    table = Table(title=f"plan of {job.path} (dataset {job.dataset}); nothing was run", title_justify="left")
    table.add_column("stage")
    table.add_column("work")
    table.add_column("what")
    table.add_column("command")
    upstream_busy = False
    for stage in stages:
        has_work, what = stage_work(job, stage)
        if has_work is False and upstream_busy and stage.entry.hook("gains_upstream_work")():
            what += "; plus what the stages before it add"
        label = {True: "[yellow]yes[/]", False: "[green]none[/]", None: "[cyan]?[/]"}[has_work]
        table.add_row(stage.name, label, what, stage.command_line())
        upstream_busy = upstream_busy or has_work is not False
    return table
