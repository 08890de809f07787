"""`pipe run JOB.toml`: the whole chain, crawl to report, as one resumable scheduled job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app
from pipeline.console import console

SELECT_PANEL = "Which stages"

JOB_EPILOG = """[bold]A job file[/] (TOML; one table per stage, run in chain order import, crawl, prepare, extract,
shard, train.ldm, train.draft, train.refine, eval; a stage without a table is skipped):

    dataset = "data/portraits"    # the dataset root of every command; relative paths start at the job file
    seed = 0                      # every command with --seed gets it unless its table sets one
    \\[crawl]
    site = "danbooru"
    tags = "1girl portrait"
    limit = 5000
    \\[prepare]                     # source = "folder/of/images" instead of the crawl's ledger
    crop = "center"
    \\[extract]
    method = "xdog,dilate"
    \\[shard]
    hints = "points,patches"
    \\[train.draft]
    recipe = "xu2020"
    steps = 2000                  # trained on for this many steps each time the train shards grow
    \\[eval]
    hints = "none,cfid"           # scores the job's own checkpoints unless draft/refine name others

Keys are the command's long options without the dashes (min-side = 512), values what the option
takes (a TOML list is joined with commas); `drafts-from = "train.draft"` means that stage's checkpoint.

[bold]Exit codes[/]: 0 every stage finished (or had nothing to do), 1 a stage failed (the stages that
do not depend on it still ran), 2 a mistake in the job file or the options, or an interruption
(Ctrl-C/SIGTERM: run it again to resume), 3 another `pipe run` holds the dataset (a cron overlap).

[bold]Nightly[/], from crontab -e:  0 2 * * * cd /srv/pipe && .venv/bin/pipe run jobs/portraits.toml >> pipe-cron.log 2>&1
"""


@app.command("run", epilog=JOB_EPILOG)
def run_command(
    job_file: Annotated[Path, typer.Argument(metavar="JOB", help="The job file (TOML): a dataset and its stages; see below, or `pipe demo --print-job`.")],
    start: Annotated[Optional[str], typer.Option("--from", help="Start at this stage (import, crawl, prepare, extract, shard, train, train.draft, ..., eval).", rich_help_panel=SELECT_PANEL, show_default=False)] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Stop after this stage.", rich_help_panel=SELECT_PANEL, show_default=False)] = None,
    only: Annotated[Optional[str], typer.Option("--only", help="Run this stage alone (train: every train stage).", rich_help_panel=SELECT_PANEL, show_default=False)] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Override a key of the job file: STAGE.KEY=VALUE (e.g. train.draft.steps=500, crawl.limit=100). Repeatable.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (which stages have work, how much, the command each runs) and run nothing.")] = False,
) -> None:
    """Run a job: every stage of one dataset, in chain order, each resumed from its ledger.

    Made for cron or a systemd timer: a re-run of a finished job does nothing and says so; after the
    board gains posts, the next run crawls, prepares, extracts and shards only those, continues training
    from the last checkpoint for the job's steps, and writes a new report (the old ones stay). Each run
    leaves ROOT/jobs/<time>/ with the job as it ran (job.toml), a plain log (job.log) and summary.json.
    """
    from pipeline.job.run import run_job, select_stages
    from pipeline.job.spec import read_job

    job = read_job(job_file, list(overrides or ()))
    stages = select_stages(job, start, until, only)
    if dry_run:
        from pipeline.job.plan import plan_table

        console.print(plan_table(job, stages))
        return
    code = run_job(job, stages)
    if code:
        raise typer.Exit(code)
