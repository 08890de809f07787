"""`pipe demo`: the whole chain as `pipe run` on a built-in job against a local fixture board."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.commands.app import app
from pipeline.commands.common import Workers
from pipeline.executors import default_workers


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Folder for the demo's job file, inputs and dataset.")] = Path("pipe-demo"),
    images: Annotated[int, typer.Option(min=1, help="How many plain illustrations the board serves (plus one post per misbehaviour).")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the generated data and of the job.")] = 0,
    workers: Workers = default_workers(),
    print_job: Annotated[bool, typer.Option("--print-job", help="Print the job file the demo runs (to copy and edit for your own `pipe run`) and run nothing.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT/job.toml even when it is not the one pipe demo wrote (an edited or own job file), and run in a folder that holds other files the demo writes.")] = False,
) -> None:
    """Run the whole chain on a local fixture board: crawl, prepare, extract line art, pack shards, train, evaluate.

    Serves generated illustrations (and misbehaving posts) from a board on 127.0.0.1 and runs a job
    against it, as `pipe run OUT/job.toml` would: crawl, prepare, line art with every method that needs
    no weights (xdog, dilate, canny, highpass, gray), WebDataset shards with every hint scheme and draft
    artifact, a small xu2020 draft model and its refinement trained for a few steps on the CPU, and an
    evaluation report (OUT/dataset/reports/<name>/report.html). Nothing leaves the machine and no
    weights are needed (FID reads n/a until `pipe weights fetch inception`). Running it again does
    nothing and says so. OUT/expected.json says what every post should become. A job.toml in OUT that
    the demo did not write (or that was edited since) is not replaced without --overwrite.
    """
    from pipeline.demo.run import print_demo_job, run_demo

    if print_job:
        print_demo_job(seed, workers)
        return
    code = run_demo(out, images, seed, workers, overwrite)
    if code:
        raise typer.Exit(code)
