"""The Typer application every command module registers on (kept apart so `pipeline.cli` and the commands share it without an import cycle)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="pipe",
    help=(
        "Build line-art colorization datasets, end to end.\n\n"
        "A dataset is one folder (ROOT). Each stage reads the previous stage's ledger and writes its own "
        "(ROOT/<stage>.parquet, one row per input with status and reason), resumes where a killed run "
        "stopped, and never drops an input silently. `pipe run JOB.toml` runs a dataset's whole chain as one "
        "scheduled job. Start with `pipe demo`: it crawls a local fixture board, prepares, extracts line art and "
        "packs shards, trains and evaluates, end to end."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)
