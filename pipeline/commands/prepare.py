"""`pipe prepare`: decode, filter, de-duplicate and crop images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app
from pipeline.commands.common import RUN_PANEL, ExecutorOption, RayAddress, Workers, executor_choice, choice
from pipeline.errors import PipeError
from pipeline.executors import default_workers

FILTER_PANEL = "Filters"
CROP_PANEL = "Crop and output"


@app.command()
def prepare(
    source: Annotated[Path, typer.Argument(help="A folder of images (searched recursively) or a crawl ledger (raw.parquet).")],
    root: Annotated[Path, typer.Argument(help="The dataset folder; created if needed.")],
    size: Annotated[int, typer.Option(min=16, help="Output side in pixels.", rich_help_panel=CROP_PANEL)] = 512,
    crop: Annotated[
        str,
        typer.Option(
            help="center: the central square. pad: the whole image on a white square. face: around the anime face "
            "found by --face-cascade (images without one are rejected no_face).",
            rich_help_panel=CROP_PANEL,
        ),
    ] = "center",
    face_cascade: Annotated[
        Optional[Path],
        typer.Option(help="lbpcascade_animeface.xml (github.com/nagadomi/lbpcascade_animeface), for --crop face.", rich_help_panel=CROP_PANEL),
    ] = None,
    faces: Annotated[
        str, typer.Option(help="With --crop face: 'largest' face only, or 'all' (one output per face).", rich_help_panel=CROP_PANEL)
    ] = "largest",
    face_widen: Annotated[
        float, typer.Option(min=1.0, help="Widen the face box by this factor to take in the hair.", rich_help_panel=CROP_PANEL)
    ] = 1.8,
    png_compression: Annotated[
        Optional[int],
        typer.Option(min=0, max=9, help="PNG zlib level 0-9. (default: OpenCV's own, about twice as fast as 1, files 5% larger)", rich_help_panel=CROP_PANEL, show_default=False),
    ] = None,
    min_side: Annotated[int, typer.Option(min=1, help="Reject (too_small) originals whose short side is under this.", rich_help_panel=FILTER_PANEL)] = 512,
    max_aspect: Annotated[float, typer.Option(min=1.0, help="Reject (aspect_ratio) when long side / short side exceeds this.", rich_help_panel=FILTER_PANEL)] = 2.0,
    max_pixels: Annotated[int, typer.Option(min=1, help="Reject (too_large) images with more pixels, before decoding them.", rich_help_panel=FILTER_PANEL)] = 100_000_000,
    chroma_threshold: Annotated[int, typer.Option(min=0, max=255, help="A pixel is coloured when max(R,G,B) - min(R,G,B) exceeds this.", rich_help_panel=FILTER_PANEL)] = 32,
    min_color_fraction: Annotated[float, typer.Option(min=0.0, max=1.0, help="Reject (grayscale) when fewer pixels than this share are coloured.", rich_help_panel=FILTER_PANEL)] = 0.05,
    min_brightness: Annotated[float, typer.Option(min=0, max=255, help="Reject (too_dark) below this mean brightness (0-255).", rich_help_panel=FILTER_PANEL)] = 25.0,
    max_brightness: Annotated[float, typer.Option(min=0, max=255, help="Reject (too_bright) above this mean brightness (0-255).", rich_help_panel=FILTER_PANEL)] = 240.0,
    near_duplicate_distance: Annotated[
        int,
        typer.Option(min=-1, max=32, help="Reject (near_duplicate) images whose 64-bit perceptual hash is within this many bits of a kept one; -1 turns it off.", rich_help_panel=FILTER_PANEL),
    ] = 4,
    workers: Workers = default_workers(),
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
    chunk_size: Annotated[int, typer.Option(min=1, help="Inputs per unit of work sent to a worker.", rich_help_panel=RUN_PANEL)] = 8,
    save_every: Annotated[
        float, typer.Option(min=0.0, help="Save finished rows to the ledger at least this often (seconds): what a killed run can lose.", rich_help_panel=RUN_PANEL)
    ] = 5.0,
    redo: Annotated[
        bool, typer.Option(help="Start over: forget ROOT/prepared.parquet and ROOT/prepared/ and prepare every input again with the current options.", rich_help_panel=RUN_PANEL)
    ] = False,
) -> None:
    """Decode, filter, de-duplicate and crop images to SIZE x SIZE RGB PNGs under ROOT/prepared/.

    Every input gets a row in ROOT/prepared.parquet: ok, or rejected/failed with a reason
    (decode_error, too_large, too_small, aspect_ratio, grayscale, too_bright, too_dark, no_face,
    duplicate, near_duplicate). Files are decoded by content, whatever their extension. Running
    the same command again resumes: inputs already in the ledger are skipped. The options are
    recorded with the ledger: resuming with another value is refused; `--redo` starts over.
    """
    from pipeline.prepare.faces import FaceDetectorConfig, load_cascade
    from pipeline.prepare.stage import CropMode, FaceSelection, PrepareConfig, PrepareStage
    from pipeline.report import print_run_report
    from pipeline.runner import run_stage

    crop_mode = choice(CropMode, crop, "--crop")
    detector = None
    if crop_mode is CropMode.face:
        if face_cascade is None:
            raise PipeError("--crop face needs --face-cascade PATH to lbpcascade_animeface.xml (github.com/nagadomi/lbpcascade_animeface)")
        load_cascade(face_cascade)  # fail now, with a clear message, not once per image
        detector = FaceDetectorConfig(cascade=face_cascade.resolve())
    config = PrepareConfig(
        size=size,
        crop=crop_mode,
        min_side=min_side,
        max_aspect=max_aspect,
        max_pixels=max_pixels,
        chroma_threshold=chroma_threshold,
        min_color_fraction=min_color_fraction,
        min_brightness=min_brightness,
        max_brightness=max_brightness,
        near_duplicate_distance=None if near_duplicate_distance < 0 else near_duplicate_distance,
        faces=choice(FaceSelection, faces, "--faces"),
        face_widen=face_widen,
        face_detector=detector,
        png_compression=png_compression,
    )
    stage = PrepareStage(source=source, root=root.resolve(), config=config)
    from pipeline.runner import RunnerConfig  # noqa: PLC0415 - pyarrow, only once the stage runs
    report = run_stage(stage, root.resolve(), RunnerConfig(workers=workers, executor=executor_choice(executor, ray_address), ray_address=ray_address, chunk_size=chunk_size, flush_seconds=save_every, redo=redo), label="prepare")
    print_run_report(report)
