"""`pipe fid DIR_A DIR_B`: FID (and KID) between two folders of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.markup import escape

from pipeline.commands.app import app
from pipeline.commands.common import DEVICE_PANEL
from pipeline.console import console, make_progress
from pipeline.errors import PipeError

FID_PANEL = "Scoring"
IMPL_HELP = (
    "Whose preprocessing the features follow: tf (TensorFlow 1.x bilinear resize, (x - 128) / 128: the original FID "
    "code, torch-fidelity), pytorch-fid (torch bilinear interpolate, 2x - 1: pytorch-fid, where most PyTorch papers' "
    "numbers come from) or clean (PIL bicubic in float: clean-fid's default). Same network and weights for all three; "
    "numbers are only comparable within one."
)
WEIGHTS_DIR_HELP = (
    "Folder holding pt_inception-2015-12-05-6726825d.pth (torch-fidelity's weights-inception-2015-12-05-6726825d.pth "
    "also works). (default: the weights folder, see `pipe weights list`; `pipe weights fetch inception` gets the file)"
)


@app.command("fid")
def fid_command(
    dir_a: Annotated[Path, typer.Argument(help="A folder of images (png, jpg, webp, bmp, tif, ppm/pgm; any sizes).", show_default=False)],
    dir_b: Annotated[Path, typer.Argument(help="The folder to compare it with.", show_default=False)],
    kid: Annotated[bool, typer.Option("--kid", help="Also the kernel inception distance (unbiased MMD^2, cubic kernel).", rich_help_panel=FID_PANEL)] = False,
    fid_impl: Annotated[str, typer.Option("--fid-impl", help=IMPL_HELP, rich_help_panel=FID_PANEL)] = "tf",
    cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Keep each folder's features (keyed by its files' names, sizes and modification times, the implementation, weights and device type) and reuse them.", rich_help_panel=FID_PANEL)] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(help="Where --cache keeps features (giving it turns --cache on). (default: $PIPE_FID_CACHE or ~/.cache/pipe/fid-features)", show_default=False, rich_help_panel=FID_PANEL)] = None,
    recursive: Annotated[bool, typer.Option("--recursive", help="Take images in sub-folders too.", rich_help_panel=FID_PANEL)] = False,
    kid_subsets: Annotated[int, typer.Option(min=1, help="KID: random subsets to average over.", rich_help_panel=FID_PANEL)] = 100,
    kid_subset_size: Annotated[int, typer.Option(min=2, help="KID: images per subset (capped by the smaller folder).", rich_help_panel=FID_PANEL)] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of KID's subsets.", rich_help_panel=FID_PANEL)] = 0,
    weights_dir: Annotated[Optional[Path], typer.Option(help=WEIGHTS_DIR_HELP, show_default=False, rich_help_panel=FID_PANEL)] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch through the network.", rich_help_panel=DEVICE_PANEL)] = 32,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.", rich_help_panel=DEVICE_PANEL)] = "auto",
    workers: Annotated[int, typer.Option(min=1, help="Threads decoding the images.", rich_help_panel=DEVICE_PANEL)] = 4,
) -> None:
    """FID between two folders of images (and KID with --kid), with the FID Inception network.

    Prints `FID: value` (and `KID: mean ± std`) on standard output, with the implementation whose
    preprocessing was used (--fid-impl); progress and warnings go to standard error. An image that
    does not decode is skipped and counted. Fewer images than 2048 biases FID upwards: compare FIDs
    only at equal image counts (KID is unbiased).
    """
    from extractors.weights import WeightsMissing, require_weights
    from pipeline.eval.fid_folders import default_cache_dir, folder_features, image_files
    from train.device import resolve_device
    from train.metrics.fid_preprocess import FID_IMPLS, check_impl
    from train.metrics.frechet import frechet_distance, gaussian_stats, kernel_inception_distance
    from train.metrics.inception_features import InceptionFeatures
    from train.networks.inception import inception_weights_in, load_fid_inception

    try:
        check_impl(fid_impl)
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    try:  # before the network loads: a typo costs nothing
        files = [image_files(folder, recursive) for folder in (dir_a, dir_b)]
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        raise PipeError(str(exc)) from None
    run_device = resolve_device(device)
    try:
        weights = require_weights("inception", inception_weights_in(weights_dir))
    except WeightsMissing:
        missing = inception_weights_in(weights_dir)
        how = ("`pipe weights fetch inception` downloads it (or give --weights-dir FOLDER holding it)" if weights_dir is None
               else "copy it there, or run `pipe weights fetch inception` and leave out --weights-dir")
        raise PipeError(f"{missing.name} missing in {missing.parent}: {how}") from None
    try:
        extractor = InceptionFeatures(load_fid_inception(weights), run_device, batch_size, fid_impl)
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    cache_folder = cache_dir if cache_dir is not None else (default_cache_dir() if cache else None)

    results = []
    with make_progress() as progress:
        for label, folder, listed in (("A", dir_a, files[0]), ("B", dir_b, files[1])):
            task = progress.add_task(f"{label}: {folder.name or folder}", total=len(listed))
            results.append(folder_features(folder, extractor, weights, files=listed, cache_dir=cache_folder, workers=workers,
                                           on_image=lambda count, task=task: progress.advance(task, count)))
    for result in results:
        if len(result.names) < 2:
            raise PipeError(f"{result.folder} holds {len(result.names)} readable image{'s' if len(result.names) != 1 else ''}"
                            f"{f' ({len(result.skipped)} unreadable)' if result.skipped else ''}: FID needs at least 2")
    for result in results:
        if result.skipped:
            first_name, first_why = result.skipped[0]
            console.print(f"[yellow]warning:[/] {escape(str(result.folder))}: skipped {len(result.skipped)} unreadable image{'s' if len(result.skipped) != 1 else ''} "
                          f"(first: {escape(first_name)}: {escape(first_why)})", soft_wrap=True, highlight=False)
    a, b = results
    smaller = min(len(a.names), len(b.names))
    if smaller < a.features.shape[1]:
        console.print(f"note: {smaller} images is fewer than the {a.features.shape[1]} feature dimensions: FID is biased upwards, "
                      "compare it only at equal image counts (KID is unbiased)", soft_wrap=True, highlight=False)
    fid = frechet_distance(gaussian_stats(a.features), gaussian_stats(b.features))
    cached = [label for label, r in (("A", a), ("B", b)) if r.cached]
    typer.echo(f"fid-impl: {fid_impl} ({FID_IMPLS[fid_impl]})")
    typer.echo(f"images: {len(a.names)} in {dir_a}, {len(b.names)} in {dir_b}" + (f" (features of {' and '.join(cached)} from the cache)" if cached else ""))
    typer.echo(f"FID: {fid:.10g}")
    if kid:
        distance = kernel_inception_distance(a.features, b.features, kid_subsets, kid_subset_size, seed)
        typer.echo(f"KID: {distance.mean:.10g} ± {distance.std:.3g} ({distance.subsets} subsets of {distance.subset_size})")
