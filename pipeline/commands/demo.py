"""`pipe demo`: crawl a local fixture board, then prepare, extract and shard the result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.commands.app import app
from pipeline.commands.common import Workers
from pipeline.executors import default_workers
from pipeline.runner import RunnerConfig


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Folder for the demo inputs and dataset.")] = Path("pipe-demo"),
    images: Annotated[int, typer.Option(min=1, help="How many plain illustrations the board serves (plus one post per misbehaviour).")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 0,
    workers: Workers = default_workers(),
) -> None:
    """Run every dataset stage on a local fixture board: crawl, prepare, extract line art, pack shards.

    Serves generated illustrations (and misbehaving posts) from a board on 127.0.0.1, crawls it,
    prepares what was downloaded, extracts line art with every method that needs no weights (xdog,
    dilate, canny, highpass, gray) and packs WebDataset shards with every hint scheme and draft
    artifact, into OUT/dataset. Nothing leaves the machine. OUT/expected.json says what every post
    should become; `pipe status OUT/dataset` shows what did.
    """
    from pipeline.demo.run import run_demo

    run_demo(out, images, seed, RunnerConfig(workers=workers))
