"""`pipe verify ROOT`: check every file pipe wrote in a dataset folder against its checksums."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.commands.app import app

VERIFY_EPILOG = """[bold]What is checked[/]: ledgers (page checksums and a digest of the whole file; ledgers an
older pipe wrote have none and are only read), options records and job state (their digests), the
outputs the ledgers name (raw/ originals rehashed against their SHA-256 keys; prepared/ and lines/
images, whose ledgers record no digest, for existence), shards (as `pipe shard --verify`),
checkpoints (read back as `pipe train --resume` would), run summaries and report.json files.

[bold]Output[/]: one line `damaged: PATH: why` per damaged file, then a table with the ok and damaged
counts per kind. Exit code 0 when every file is good, 1 when any is damaged, 2 for a bad ROOT.

[bold]A damaged file[/]: restore it from a backup, or make it again with its stage's `--redo`
(a ledger or an output: the stage that writes it; a checkpoint: `pipe train ... --overwrite`).
"""


@app.command(epilog=VERIFY_EPILOG)
def verify(root: Annotated[Path, typer.Argument(help="The dataset folder.")]) -> None:
    """Check every file pipe wrote in ROOT for damage (bit rot, a cut-short copy): nothing is changed.

    Run it after copying or restoring a dataset, or from cron: it reads everything back, so it takes
    about as long as reading the dataset once (a progress bar shows the files).
    """
    from pipeline.verify import show_verify

    if show_verify(root):
        raise typer.Exit(1)
