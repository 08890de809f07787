"""`pipe import pairs`: an existing paired dataset (colour images and their line drawings) into a dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.import_group import import_app  # the group `import booru` shares
from pipeline.commands.common import RUN_PANEL, ExecutorOption, RayAddress, Workers, choice, executor_choice
from pipeline.errors import PipeError
from pipeline.executors import default_workers

LAYOUT_PANEL = "Layout of SOURCE"
FILTER_PANEL = "Filters (the colour half as `pipe prepare` filters an image; the sketch half must be grey)"
CROP_PANEL = "Crop and output (one crop for both halves)"


PAIRS_EPILOG = (
    "[bold]Examples[/]\n\n"
    "pipe import pairs anime-sketch-colorization-pair/data ROOT --layout side-by-side   (train/*.png, val/*.png: colour left, sketch right)\n\n"
    "pipe import pairs my-pairs ROOT --layout folders --color-dir images --sketch-dir lines\n\n"
    "pipe extract ROOT --method xdog   then   pipe shard ROOT --lines real,xdog\n\n"
    "[bold]Reasons[/] a pair is not imported (imports.parquet): decode_error, too_large, too_small, aspect_ratio, grayscale, "
    "too_bright, too_dark (the colour half, as pipe prepare), sketch_not_grey, halves_swapped (colour grey, sketch coloured: "
    "the order or the folders are the other way round), size_mismatch, odd_width (side-by-side), missing_color, missing_sketch, "
    "ambiguous_pair (folders: two files of one folder with one name), duplicate (same colour bytes as a kept pair), read_error."
)


@import_app.command("pairs", epilog=PAIRS_EPILOG)
def pairs(
    source: Annotated[Path, typer.Argument(help="The paired dataset: a folder (see --layout).", show_default=False)],
    root: Annotated[Path, typer.Argument(help="The dataset folder; created if needed.", show_default=False)],
    layout: Annotated[
        Optional[str],
        typer.Option(
            help="side-by-side: every image holds a pair as its left and right halves (SOURCE/**/*.png). folders: "
            "SOURCE/color/ and SOURCE/sketch/ hold the two halves as files with matching names. Either may sit under "
            "SOURCE/train/ and SOURCE/val/: that split is kept. [required]",
            rich_help_panel=LAYOUT_PANEL,
            show_default=False,
        ),
    ] = None,
    order: Annotated[
        Optional[str],
        typer.Option(
            help="With --layout side-by-side: color-sketch (colour left, sketch right: the public anime sketch "
            "colorization pair set) or sketch-color. (default: color-sketch)",
            rich_help_panel=LAYOUT_PANEL,
            show_default=False,
        ),
    ] = None,
    color_dir: Annotated[
        Optional[str], typer.Option(help="With --layout folders: the folder of colour images. (default: color)", rich_help_panel=LAYOUT_PANEL, show_default=False)
    ] = None,
    sketch_dir: Annotated[
        Optional[str], typer.Option(help="With --layout folders: the folder of line drawings. (default: sketch)", rich_help_panel=LAYOUT_PANEL, show_default=False)
    ] = None,
    size: Annotated[int, typer.Option(min=16, help="Output side in pixels, for the colour and the line art alike.", rich_help_panel=CROP_PANEL)] = 512,
    crop: Annotated[
        str, typer.Option(help="center: the central square of both halves. pad: both halves whole, on a white square.", rich_help_panel=CROP_PANEL)
    ] = "center",
    png_compression: Annotated[
        Optional[int],
        typer.Option(min=0, max=9, help="PNG zlib level 0-9. (default: OpenCV's own)", rich_help_panel=CROP_PANEL, show_default=False),
    ] = None,
    min_side: Annotated[int, typer.Option(min=1, help="Reject (too_small) pairs whose short side is under this.", rich_help_panel=FILTER_PANEL)] = 512,
    max_aspect: Annotated[float, typer.Option(min=1.0, help="Reject (aspect_ratio) when long side / short side of a half exceeds this.", rich_help_panel=FILTER_PANEL)] = 2.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Reject (too_large) files with more pixels, before decoding them.", rich_help_panel=FILTER_PANEL)] = 100_000_000,
    chroma_threshold: Annotated[int, typer.Option(min=0, max=255, help="A pixel is coloured when max(R,G,B) - min(R,G,B) exceeds this.", rich_help_panel=FILTER_PANEL)] = 32,
    min_color_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Reject (grayscale) when fewer of the colour half's pixels than this share are coloured.", rich_help_panel=FILTER_PANEL)] = 0.05,
    max_sketch_color: Annotated[float, typer.Option(min=0.0, max=1.0, help="Reject (sketch_not_grey) when more of the sketch's pixels than this share are coloured.", rich_help_panel=FILTER_PANEL)] = 0.05,
    min_brightness: Annotated[float, typer.Option(min=0, max=255, help="Reject (too_dark) below this mean brightness of the colour half (0-255).", rich_help_panel=FILTER_PANEL)] = 25.0,
    max_brightness: Annotated[float, typer.Option(min=0, max=255, help="Reject (too_bright) above this mean brightness of the colour half (0-255).", rich_help_panel=FILTER_PANEL)] = 240.0,
    workers: Workers = default_workers(),
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Pairs per unit of work sent to a worker.", rich_help_panel=RUN_PANEL)] = 8,
    save_every: Annotated[
        float, typer.Option(min=0.0, help="Save finished rows to the ledger at least this often (seconds): what a killed run can lose.", rich_help_panel=RUN_PANEL)
    ] = 5.0,
    redo: Annotated[
        bool, typer.Option(help="Start over: forget ROOT/imports.parquet and import every pair again with the current options.", rich_help_panel=RUN_PANEL)
    ] = False,
) -> None:
    """Import a paired dataset: colours into ROOT/prepared/, line drawings into ROOT/lines/real/.

    The colour half is decoded, filtered and cropped to SIZE x SIZE as `pipe prepare` does.
    The sketch half must be grey and the same size; it gets the same crop, so the pair stays aligned.
    It is stored as the line method `real` (grey, black lines on white), so `pipe extract` and
    `pipe shard --lines real,xdog` work on the result as on any dataset.
    A sample's key is the SHA-256 of the file its colour comes from.

    Every pair gets a row in ROOT/imports.parquet: ok, or rejected/failed with a reason.
    A pair under SOURCE/train/ or SOURCE/val/ keeps that split (`pipe shard` honours it).
    Each pair also becomes a row of ROOT/prepared.parquet, each ok pair a `real` row of ROOT/lines.parquet.
    Running the same command again resumes; resuming with other options is refused, `--redo` starts over.
    """
    from pipeline.importing.pairs import IMPORT_CROPS, ImportConfig
    from pipeline.importing.publish import run_import
    from pipeline.importing.sources import Layout, Order
    from pipeline.importing.stage import ImportStage
    from pipeline.prepare.stage import CropMode, PrepareConfig
    from pipeline.report import print_run_report

    if layout is None:
        raise PipeError("--layout is required: side-by-side (one image holds both halves) or folders (SOURCE/color/ and SOURCE/sketch/)")
    chosen = choice(Layout, layout, "--layout")
    if chosen is Layout.folders and order is not None:
        raise PipeError("--order goes with --layout side-by-side (with folders, --color-dir and --sketch-dir say which is which)")
    if chosen is Layout.side_by_side and (color_dir is not None or sketch_dir is not None):
        raise PipeError("--color-dir and --sketch-dir go with --layout folders")
    for flag, name in (("--color-dir", color_dir), ("--sketch-dir", sketch_dir)):
        if name is not None and (not name or Path(name).name != name or name in (".", "..")):
            raise PipeError(f"{flag} is the name of a folder inside SOURCE (or inside its train/ and val/), got {name!r}")
    crop_mode = choice(CropMode, crop, "--crop")
    if crop_mode not in IMPORT_CROPS:
        raise PipeError(f"--crop must be one of: {', '.join(c.value for c in IMPORT_CROPS)} for an import (got {crop!r})")
    config = ImportConfig(
        layout=chosen,
        order=choice(Order, order or Order.color_sketch.value, "--order"),
        color_dir=color_dir or "color",
        sketch_dir=sketch_dir or "sketch",
        max_sketch_color=max_sketch_color,
        filters=PrepareConfig(
            size=size,
            crop=crop_mode,
            min_side=min_side,
            max_aspect=max_aspect,
            max_pixels=max_pixels,
            chroma_threshold=chroma_threshold,
            min_color_fraction=min_color_fraction,
            min_brightness=min_brightness,
            max_brightness=max_brightness,
            png_compression=png_compression,
        ),
    )
    stage = ImportStage(source=source, root=root.resolve(), config=config)
    from pipeline.runner import RunnerConfig  # noqa: PLC0415 - pyarrow, only once the stage runs
    runner = RunnerConfig(
        workers=workers, executor=executor_choice(executor, ray_address), ray_address=ray_address,
        chunk_size=chunk_size, flush_seconds=save_every, redo=redo,
    )
    report, published = run_import(stage, runner)
    print_run_report(report)
    from pipeline.console import console

    if published.prepared or published.lines:
        console.print(f"published {published.prepared:,} rows to prepared.parquet and {published.lines:,} `real` rows to lines.parquet", soft_wrap=True)

# `pipe import booru` registers itself on the same group.
from pipeline.commands import import_booru  # noqa: E402, F401
