"""`pipe shard`: pack the dataset into WebDataset shards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app, lazy_epilog
from pipeline.commands.common import RUN_PANEL, ExecutorOption, RayAddress, Workers, executor_choice
from pipeline.executors import default_workers

SYNTH_PANEL = "Lines, hints and drafts"
SHARD_PANEL = "Shards"


def _shard_epilog() -> str:
    from synth.artifacts import ARTIFACTS
    from synth.hints import HINTS

    lines = ["[bold]Hint schemes[/] (--hints; one drawn per sample):\n\n"]
    lines += [f"[bold]{h.name}[/]: {h.summary}\n\n" for h in HINTS.values()]
    lines.append("[bold]Artifacts[/] (--artifacts; all listed are applied, in this order, to make the draft):\n\n")
    lines += [f"[bold]{name}[/]: {summary}\n\n" for name, (summary, _) in ARTIFACTS.items()]
    return "".join(lines)


@app.command(cls=lazy_epilog(_shard_epilog))
def shard(
    ctx: typer.Context,
    root: Annotated[Path, typer.Argument(help="The dataset folder (after `pipe prepare` and `pipe extract`).")],
    lines: Annotated[
        Optional[str],
        typer.Option(help="Line methods to draw from per sample, with optional weights: xdog,dilate or xdog=2,dilate=1. (default: every method in ROOT/lines.parquet but gray, equal weights; gray is used through --gray-share, or when named here)", rich_help_panel=SYNTH_PANEL, show_default=False),
    ] = None,
    gray_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of samples given the grey image instead of line art (Lee & Lee).", rich_help_panel=SYNTH_PANEL)] = 0.0,
    equalize_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of samples whose lines are histogram-equalized.", rich_help_panel=SYNTH_PANEL)] = 0.0,
    jitter: Annotated[float, typer.Option(min=0.01, max=1.0, help="Lower bound of r in the line intensity jitter x*r + 1 - r, r uniform in [JITTER, 1]; 1 turns it off.", rich_help_panel=SYNTH_PANEL)] = 0.7,
    hints: Annotated[str, typer.Option(help="Comma-separated hint schemes (see below).", rich_help_panel=SYNTH_PANEL)] = "patches",
    no_hint_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of samples with no hint at all (AlacGAN-style trainers use 0.5).", rich_help_panel=SYNTH_PANEL)] = 0.0,
    artifacts: Annotated[str, typer.Option(help="Draft artifacts: any of paste,warp,spray, or none (no draft member).", rich_help_panel=SYNTH_PANEL)] = "paste,warp,spray",
    artifacts_near_hints: Annotated[bool, typer.Option("--artifacts-near-hints", help="Centre the paste and spray errors on the sample's hint pixels (Xu's thesis, sec. 5.2.2: users correct where the draft is wrong) instead of anywhere.", rich_help_panel=SYNTH_PANEL)] = False,
    seed: Annotated[int, typer.Option(help="Seed of every per-sample draw (with the key): the same seed gives byte-identical shards.", rich_help_panel=SYNTH_PANEL)] = 0,
    val: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of keys in the val split (decided by a hash of the key).", rich_help_panel=SHARD_PANEL)] = 0.05,
    shard_samples: Annotated[int, typer.Option(min=1, help="Samples per shard at most.", rich_help_panel=SHARD_PANEL)] = 1000,
    shard_mb: Annotated[float, typer.Option(min=0.01, help="Megabytes per shard at most (a single larger sample gets a shard of its own).", rich_help_panel=SHARD_PANEL)] = 1024.0,
    histogram_images: Annotated[int, typer.Option(min=1, help="Train images the dataset colour histogram is counted over (histogram hints).", rich_help_panel=SHARD_PANEL)] = 1000,
    png_compression: Annotated[Optional[int], typer.Option(min=0, max=9, help="PNG zlib level 0-9 for line, hint and draft. (default: OpenCV's)", rich_help_panel=SHARD_PANEL, show_default=False)] = None,
    jpeg: Annotated[str, typer.Option(help="Members stored as JPEG instead of PNG: any of color,line,draft, or none. JPEG colour decodes several times faster (and at 1/2, 1/4 or 1/8 scale straight from the file) at a small, stated quality cost (README: shard formats); hints always stay PNG.", rich_help_panel=SHARD_PANEL)] = "none",
    jpeg_quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality of the --jpeg members (OpenCV's libjpeg, full-resolution 4:4:4 chroma).", rich_help_panel=SHARD_PANEL)] = 95,
    lean_train: Annotated[bool, typer.Option("--lean-train", help="Train samples hold colour and line only (and the palette with --hints palette): `pipe train` (its default --synth device) draws their hints and drafts on the training device from the schemes recorded here, new ones every step. Several times less work per sample; val samples keep every member for `pipe eval`.", rich_help_panel=SYNTH_PANEL)] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Write nothing: re-read every file of the shard set (options record, histogram, done-markers, sidecars, tars, every member against its digest) and name each damaged one (exit 1 on problems).", rich_help_panel=RUN_PANEL)] = False,
    contact_sheet: Annotated[Optional[Path], typer.Option(help="Write nothing else: save a PNG grid (colour, line, hint, draft) of the first train samples to this file.", rich_help_panel=RUN_PANEL, show_default=False)] = None,
    workers: Workers = default_workers(),
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
    save_every: Annotated[float, typer.Option(min=0.0, help="Save finished rows to the ledger at least this often (seconds): what a killed run can lose.", rich_help_panel=RUN_PANEL)] = 5.0,
    redo: Annotated[bool, typer.Option(help="Delete ROOT/shards and the shards ledger and build them again.", rich_help_panel=RUN_PANEL)] = False,
) -> None:
    """Pack every prepared image into WebDataset shards: ROOT/shards/{train,val}/NNNNN.tar.

    Each sample holds <key>.color.png, .line.png (a line method drawn per sample, then augmented),
    .hint.png (RGBA: colour, and where given in alpha), .draft.png (the colour image with the draft
    artifacts), .palette.npy (with --hints palette) and .json with every drawn parameter; --jpeg
    color,line,draft stores those members as .jpg instead (a GPU trainer's loader then keeps up). Each shard
    has a Parquet sidecar and a _stats.json done-marker; a killed run resumes at the first unfinished
    shard and gives the same bytes as an uninterrupted one; `pipe shard ROOT` alone resumes with the
    recorded options (ROOT/shards/_config.json). Outcomes go to ROOT/shards.parquet.
    """
    from pipeline.shard.cli_support import run_shard_command

    # What the command line set: on a resume, the other options take their recorded values.
    # Compared by name: Typer carries its own copy of Click, whose ParameterSource is not click's.
    given = {name for name in ctx.params if getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT", "DEFAULT_MAP")}
    run_shard_command(
        given=given, root=root, lines=lines, gray_share=gray_share, equalize_share=equalize_share, jitter=jitter, hints=hints,
        no_hint_share=no_hint_share, artifacts=artifacts, artifacts_near_hints=artifacts_near_hints, seed=seed, val=val, shard_samples=shard_samples,
        shard_mb=shard_mb, histogram_images=histogram_images, png_compression=png_compression, jpeg=jpeg, jpeg_quality=jpeg_quality, lean_train=lean_train, verify=verify, contact_sheet=contact_sheet,
        workers=workers, executor=executor_choice(executor, ray_address), ray_address=ray_address, save_every=save_every, redo=redo,
    )
