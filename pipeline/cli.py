"""The `pipe` command line: one Typer command per stage, thin shells over the stage modules."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler

from pipeline import __version__
from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.runner import RunnerConfig, default_workers

app = typer.Typer(
    name="pipe",
    help=(
        "Build line-art colorization datasets, end to end.\n\n"
        "A dataset is one folder (ROOT). Each stage reads the previous stage's ledger and writes its own "
        "(ROOT/<stage>.parquet, one row per input with status and reason), resumes where a killed run "
        "stopped, and never drops an input silently. Start with `pipe demo`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

RUN_PANEL = "Running"
FILTER_PANEL = "Filters"
CROP_PANEL = "Crop and output"

Workers = Annotated[
    int,
    typer.Option(
        "--workers", "-j", min=0, help="Worker processes (0: run in this process, for debugging).", rich_help_panel=RUN_PANEL
    ),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"pipe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])


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
        typer.Option(min=0, max=9, help="PNG zlib level 0-9 [default: OpenCV's own, about twice as fast as 1, files 5% larger].", rich_help_panel=CROP_PANEL, show_default=False),
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
    chunk_size: Annotated[int, typer.Option(min=1, help="Inputs per unit of work sent to a worker.", rich_help_panel=RUN_PANEL)] = 8,
    save_every: Annotated[
        float, typer.Option(min=0.0, help="Save finished rows to the ledger at least this often (seconds): what a killed run can lose.", rich_help_panel=RUN_PANEL)
    ] = 5.0,
) -> None:
    """Decode, filter, de-duplicate and crop images to SIZE x SIZE RGB PNGs under ROOT/prepared/.

    Every input gets a row in ROOT/prepared.parquet: ok, or rejected/failed with a reason
    (decode_error, too_large, too_small, aspect_ratio, grayscale, too_bright, too_dark, no_face,
    duplicate, near_duplicate). Files are decoded by content, whatever their extension. Running
    the same command again resumes: inputs already in the ledger are skipped.
    """
    from pipeline.prepare.faces import FaceDetectorConfig, load_cascade
    from pipeline.prepare.stage import CropMode, FaceSelection, PrepareConfig, PrepareStage
    from pipeline.report import print_run_report
    from pipeline.runner import run_stage

    crop_mode = _choice(CropMode, crop, "--crop")
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
        faces=_choice(FaceSelection, faces, "--faces"),
        face_widen=face_widen,
        face_detector=detector,
        png_compression=png_compression,
    )
    stage = PrepareStage(source=source, root=root.resolve(), config=config)
    report = run_stage(stage, root.resolve(), RunnerConfig(workers=workers, chunk_size=chunk_size, flush_seconds=save_every), label="prepare")
    print_run_report(report)


QUERY_PANEL = "What to take"
POLITE_PANEL = "Politeness"
ACCOUNT_PANEL = "Account"


@app.command()
def crawl(
    site: Annotated[
        str,
        typer.Argument(
            help="A built-in board: danbooru, safebooru, gelbooru, yandere, konachan; or an API family "
            "(gelbooru02, moebooru) with --root."
        ),
    ],
    root: Annotated[Path, typer.Argument(help="The dataset folder: originals go to ROOT/raw/, the ledger to ROOT/raw.parquet.")],
    tags: Annotated[
        str,
        typer.Option(
            "--tags", "-t",
            help="The board's own search, space-separated, e.g. \"1girl solo portrait white_background\". "
            "Danbooru lets anonymous users combine 2 tags (more answers 422): give --user/--api-key for more.",
            rich_help_panel=QUERY_PANEL,
        ),
    ],
    limit: Annotated[
        Optional[int],
        typer.Option(min=1, help="Stop once this many posts of this query are downloaded, counting earlier runs into ROOT. (default: no limit)", show_default=False, rich_help_panel=QUERY_PANEL),
    ] = None,
    rating: Annotated[
        str,
        typer.Option(help="Ratings to download, Danbooru's letters: g(eneral), s(ensitive), q(uestionable), e(xplicit). Other boards' \"safe\" counts as g. Others are recorded rating_filtered.", rich_help_panel=QUERY_PANEL),
    ] = "g,s",
    min_side: Annotated[int, typer.Option(min=1, help="Skip (too_small) posts whose declared short side is under this, without downloading them.", rich_help_panel=QUERY_PANEL)] = 512,
    exts: Annotated[
        str,
        typer.Option(help="Image types to download (jpg, png, webp, gif, bmp, avif). Videos, archives and Flash are never downloaded (unsupported_ext); animated GIFs are rejected (animated).", rich_help_panel=QUERY_PANEL),
    ] = "jpg,png,webp",
    max_file_mb: Annotated[float, typer.Option(min=0.01, help="Skip or cancel files larger than this (too_large).", rich_help_panel=QUERY_PANEL)] = 64.0,
    per_page: Annotated[Optional[int], typer.Option(min=1, help="Posts per API page. (default: the API's maximum: Danbooru 200, Gelbooru 100, Safebooru 1000, Moebooru 100)", show_default=False, rich_help_panel=QUERY_PANEL)] = None,
    site_root: Annotated[Optional[str], typer.Option("--root", help="Base URL of another instance of the same API family (a mirror, a self-hosted board, a test server).", rich_help_panel=QUERY_PANEL)] = None,
    interval: Annotated[
        Optional[float],
        typer.Option(min=0.0, help="Minimum seconds between two API requests. (default: the site's, 1.0 s for every built-in board; Danbooru's own clients keep 0.5-1.5 s)", show_default=False, rich_help_panel=POLITE_PANEL),
    ] = None,
    connections: Annotated[int, typer.Option(min=1, max=16, help="Parallel file downloads per host (API requests always use one connection).", rich_help_panel=POLITE_PANEL)] = 2,
    autothrottle: Annotated[bool, typer.Option(help="Pace file downloads by the server's response time (Scrapy AutoThrottle).", rich_help_panel=POLITE_PANEL)] = True,
    autothrottle_target: Annotated[float, typer.Option(min=0.1, help="AutoThrottle's target of requests in flight per host.", rich_help_panel=POLITE_PANEL)] = 2.0,
    robots: Annotated[bool, typer.Option(help="Obey the site's robots.txt; disallowed files are recorded robots_disallowed.", rich_help_panel=POLITE_PANEL)] = True,
    retries: Annotated[int, typer.Option(min=0, help="Retries on 429, 5xx, timeouts and cut-off transfers.", rich_help_panel=POLITE_PANEL)] = 4,
    backoff: Annotated[float, typer.Option(min=0.0, help="Seconds before the first retry, doubling each time. 429/503 wait for the server's Retry-After instead, pausing the whole host.", rich_help_panel=POLITE_PANEL)] = 2.0,
    max_retry_wait: Annotated[float, typer.Option(min=0.0, help="A Retry-After longer than this is not waited for: the post is recorded failed and retried on the next run.", rich_help_panel=POLITE_PANEL)] = 600.0,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds before a request times out.", rich_help_panel=POLITE_PANEL)] = 60.0,
    contact: Annotated[Optional[str], typer.Option(help="An e-mail or URL added to the User-Agent, so a board's admins can reach you rather than ban you.", rich_help_panel=POLITE_PANEL)] = None,
    user: Annotated[Optional[str], typer.Option(help="Account name (Danbooru login, Gelbooru user id, Moebooru login).", rich_help_panel=ACCOUNT_PANEL)] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="PIPE_API_KEY", help="API key (Moebooru: password hash) for --user; also read from PIPE_API_KEY.", rich_help_panel=ACCOUNT_PANEL)] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.", rich_help_panel=RUN_PANEL)] = True,
) -> None:
    """Download originals from an image board into ROOT/raw/ and record every listed post in ROOT/raw.parquet.

    Each post the API lists gets one ledger row: ok (downloaded, verified against the declared md5,
    stored as raw/<ab>/<sha256>.<ext>), or rejected/failed with a reason: no_file_url,
    unsupported_ext, rating_filtered, too_small, too_large, duplicate, md5_mismatch, not_an_image,
    unsupported_type, animated, robots_disallowed, truncated, timeout, http_<code>.

    Running the same command again resumes: recorded posts are not listed again, known files are
    not downloaded again, and failed posts are retried. After a finished crawl it fetches only what
    was uploaded since. Feed the result to `pipe prepare ROOT/raw.parquet ROOT`.
    """
    from crawlers.config import CrawlConfig, Politeness
    from pipeline.crawl.report import print_crawl_report
    from pipeline.crawl.stage import run_crawl
    from crawlers.sites import resolve_site

    try:
        record = resolve_site(site, site_root)
        config = CrawlConfig(
            site=record,
            root=root.resolve(),
            tags=tags,
            limit=limit,
            ratings=tuple(rating.split(",")),
            min_side=min_side,
            exts=tuple(exts.split(",")),
            max_file_mb=max_file_mb,
            per_page=per_page,
            politeness=Politeness(
                request_interval=interval,
                autothrottle=autothrottle,
                autothrottle_target=autothrottle_target,
                connections_per_host=connections,
                obey_robots=robots,
                retries=retries,
                backoff_base=backoff,
                max_retry_wait=max_retry_wait,
                timeout=timeout,
                contact=contact,
            ),
            user=user,
            api_key=api_key,
            verbose=_verbosity(),
            progress=progress,
        )
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    if not config.tags:
        raise PipeError("--tags is empty: give the board's search, e.g. --tags \"1girl solo\"")
    report = run_crawl(config)
    print_crawl_report(report, config.root)
    if report.error:
        raise PipeError(report.error)


EXTRACT_PANEL = "Methods"
POST_PANEL = "Post-processing (any method)"
DEVICE_PANEL = "Device"


def _methods_epilog() -> str:
    from extractors.methods import METHODS

    lines = ["[bold]Methods and their options[/] (set with --set METHOD.OPTION=VALUE; several comma-separated values are drawn per sample):\n\n"]
    for method in METHODS.values():
        options = ", ".join(f"{o.name}={','.join(map(str, o.default)) if isinstance(o.default, tuple) else o.default}" for o in method.options)
        lines.append(f"[bold]{method.name}[/]: {method.summary}" + (f". {options}" if options else "") + "\n\n")
    return "".join(lines)


@app.command(epilog=_methods_epilog())
def extract(
    root: Annotated[Path, typer.Argument(help="The dataset folder (after `pipe prepare`).")],
    method: Annotated[
        str,
        typer.Option("--method", "-m", help="Comma-separated methods, run in one pass over the images: xdog, dilate, canny, highpass, gray, sketchkeras, ldm.", rich_help_panel=EXTRACT_PANEL),
    ] = "xdog",
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="Override a method option: METHOD.OPTION=VALUE, e.g. xdog.sigma=0.3,0.5 or sketchkeras.mode=enhanced. Repeatable.", rich_help_panel=EXTRACT_PANEL, show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the per-sample draws (with the method and the key).", rich_help_panel=EXTRACT_PANEL)] = 0,
    weights: Annotated[
        Optional[list[str]],
        typer.Option(help="METHOD=PATH of a weights file (default: $PIPE_WEIGHTS or ~/.cache/pipe/weights, see `pipe weights list`). Repeatable.", rich_help_panel=EXTRACT_PANEL, show_default=False),
    ] = None,
    size: Annotated[Optional[int], typer.Option(min=8, help="Resize lines to SIZE x SIZE (area when shrinking). (default: keep)", rich_help_panel=POST_PANEL, show_default=False)] = None,
    equalize: Annotated[bool, typer.Option(help="Equalize each line image's histogram (Lee & Lee's line-style generalization).", rich_help_panel=POST_PANEL)] = False,
    binarize: Annotated[Optional[str], typer.Option(help="'otsu': two-level lines at Otsu's threshold. (default: keep grey levels)", rich_help_panel=POST_PANEL, show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.", rich_help_panel=DEVICE_PANEL)] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per device batch (per method).", rich_help_panel=DEVICE_PANEL)] = 16,
    workers: Workers = default_workers(),
    png_compression: Annotated[Optional[int], typer.Option(min=0, max=9, help="PNG zlib level 0-9. (default: OpenCV's)", rich_help_panel=RUN_PANEL, show_default=False)] = None,
    save_every: Annotated[float, typer.Option(min=0.0, help="Save finished rows to the ledger at least this often (seconds).", rich_help_panel=RUN_PANEL)] = 5.0,
    redo: Annotated[bool, typer.Option(help="Extract again for images already in the ledger (with the current options), replacing their rows and files.", rich_help_panel=RUN_PANEL)] = False,
) -> None:
    """Extract line art from every prepared image into ROOT/lines/<method>/ab/<key>.png (black lines on white).

    Each (image, method) pair gets a row in ROOT/lines.parquet with the parameters used for that
    sample (drawn per sample where an option has several values), so re-running the method with them
    reproduces the file. Decoding and encoding run in worker processes; the methods run in batches on
    the device. Running the same command again resumes; `--redo` starts the chosen methods over.
    sketchkeras needs converted weights (`pipe weights convert sketchkeras mod.h5`).
    """
    from extractors.methods import parse_method_names, parse_overrides
    from pipeline.extract.config import ExtractConfig
    from pipeline.extract.stage import run_extract
    from pipeline.report import print_run_report

    try:
        methods = tuple(parse_method_names(method))
        overrides = parse_overrides(set_ or [])
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    weight_paths = {}
    for entry in weights or []:
        name, sep, path = entry.partition("=")
        if not sep or not path:
            raise PipeError(f"--weights takes METHOD=PATH, got {entry!r}")
        weight_paths[name] = Path(path).expanduser()
    config = ExtractConfig(
        root=root.resolve(),
        methods=methods,
        overrides=overrides,
        seed=seed,
        device=device,
        batch_size=batch_size,
        workers=workers,
        size=size,
        equalize=equalize,
        binarize=binarize,
        weights=weight_paths,
        png_compression=png_compression,
        flush_seconds=save_every,
        redo=redo,
    )
    print_run_report(run_extract(config))


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


@app.command(epilog=_shard_epilog())
def shard(
    root: Annotated[Path, typer.Argument(help="The dataset folder (after `pipe prepare` and `pipe extract`).")],
    lines: Annotated[
        Optional[str],
        typer.Option(help="Line methods to draw from per sample, with optional weights: xdog,dilate or xdog=2,dilate=1. (default: every method in ROOT/lines.parquet, equal weights)", rich_help_panel=SYNTH_PANEL, show_default=False),
    ] = None,
    gray_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of samples given the grey image instead of line art (Lee & Lee).", rich_help_panel=SYNTH_PANEL)] = 0.0,
    equalize_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of samples whose lines are histogram-equalized.", rich_help_panel=SYNTH_PANEL)] = 0.0,
    jitter: Annotated[float, typer.Option(min=0.01, max=1.0, help="Lower bound of r in the line intensity jitter x*r + 1 - r, r uniform in [JITTER, 1]; 1 turns it off.", rich_help_panel=SYNTH_PANEL)] = 0.7,
    hints: Annotated[str, typer.Option(help="Comma-separated hint schemes (see below).", rich_help_panel=SYNTH_PANEL)] = "patches",
    no_hint_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of samples with no hint at all (AlacGAN-style trainers use 0.5).", rich_help_panel=SYNTH_PANEL)] = 0.0,
    artifacts: Annotated[str, typer.Option(help="Draft artifacts: any of paste,warp,spray, or none (no draft member).", rich_help_panel=SYNTH_PANEL)] = "paste,warp,spray",
    seed: Annotated[int, typer.Option(help="Seed of every per-sample draw (with the key): the same seed gives byte-identical shards.", rich_help_panel=SYNTH_PANEL)] = 0,
    val: Annotated[float, typer.Option(min=0.0, max=0.99, help="Share of keys in the val split (decided by a hash of the key).", rich_help_panel=SHARD_PANEL)] = 0.05,
    shard_samples: Annotated[int, typer.Option(min=1, help="Samples per shard at most.", rich_help_panel=SHARD_PANEL)] = 1000,
    shard_mb: Annotated[float, typer.Option(min=0.01, help="Megabytes per shard at most (a single larger sample gets a shard of its own).", rich_help_panel=SHARD_PANEL)] = 1024.0,
    histogram_images: Annotated[int, typer.Option(min=1, help="Train images the dataset colour histogram is counted over (histogram hints).", rich_help_panel=SHARD_PANEL)] = 1000,
    png_compression: Annotated[Optional[int], typer.Option(min=0, max=9, help="PNG zlib level 0-9 for line, hint and draft. (default: OpenCV's)", rich_help_panel=SHARD_PANEL, show_default=False)] = None,
    verify: Annotated[bool, typer.Option("--verify", help="Write nothing: re-read every shard and check it against its sidecar and done-marker (exit 1 on problems).", rich_help_panel=RUN_PANEL)] = False,
    contact_sheet: Annotated[Optional[Path], typer.Option(help="Write nothing else: save a PNG grid (colour, line, hint, draft) of the first train samples to this file.", rich_help_panel=RUN_PANEL, show_default=False)] = None,
    workers: Workers = default_workers(),
    save_every: Annotated[float, typer.Option(min=0.0, help="Save failed rows to the ledger at least this often (seconds).", rich_help_panel=RUN_PANEL)] = 5.0,
    redo: Annotated[bool, typer.Option(help="Delete ROOT/shards and the shards ledger and build them again.", rich_help_panel=RUN_PANEL)] = False,
) -> None:
    """Pack every prepared image into WebDataset shards: ROOT/shards/{train,val}/NNNNN.tar.

    Each sample holds <key>.color.png, .line.png (a line method drawn per sample, then augmented),
    .hint.png (RGBA: colour, and where given in alpha), .draft.png (the colour image with the draft
    artifacts), .palette.npy (with --hints palette) and .json with every drawn parameter. Each shard
    has a Parquet sidecar and a _stats.json done-marker; a killed run resumes at the first unfinished
    shard and gives the same bytes as an uninterrupted one. Outcomes go to ROOT/shards.parquet.
    """
    from pipeline.shard.cli_support import run_shard_command

    run_shard_command(
        root=root, lines=lines, gray_share=gray_share, equalize_share=equalize_share, jitter=jitter, hints=hints,
        no_hint_share=no_hint_share, artifacts=artifacts, seed=seed, val=val, shard_samples=shard_samples,
        shard_mb=shard_mb, histogram_images=histogram_images, png_compression=png_compression, verify=verify, contact_sheet=contact_sheet,
        workers=workers, save_every=save_every, redo=redo,
    )


TRAIN_PANEL = "Training"


def _recipes_epilog() -> str:
    from train.recipes import RECIPES

    lines = ["[bold]Recipes[/] (--recipe) and their stages:\n\n"]
    for recipe in RECIPES.values():
        stages = ", ".join(f"{name} ({'+'.join(stage.inputs)} -> colour, {stage.size}px, batch {stage.batch_size})" for name, stage in recipe.stages.items())
        lines.append(f"[bold]{recipe.name}[/]: {recipe.summary}. Stages: {stages}\n\n")
    return "".join(lines)


@app.command(epilog=_recipes_epilog())
def train(
    stage: Annotated[str, typer.Argument(help="Which stage to train: draft, refine, or ldm (lee2020's Line Detection Model, trained first).")],
    root: Annotated[Path, typer.Argument(help="The dataset folder (after `pipe shard`): reads ROOT/shards/train, writes ROOT/runs/RUN.")],
    recipe: Annotated[str, typer.Option(help="The published system to reproduce (see below).", rich_help_panel=TRAIN_PANEL)] = "xu2020",
    steps: Annotated[int, typer.Option(min=1, help="Train until this step (counting steps of earlier runs with --resume).", rich_help_panel=TRAIN_PANEL)] = 10_000,
    # Not --run: torchrun would take it for an abbreviation of its own --run-path.
    name: Annotated[Optional[str], typer.Option(help="Run name: ROOT/runs/NAME holds checkpoints, samples, metrics and TensorBoard logs. (default: RECIPE-STAGE)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Images per step (per GPU under torchrun). (default: the recipe's)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    size: Annotated[Optional[int], typer.Option(min=16, help="Training resolution; shard images are resized on the device. (default: the recipe's)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    width: Annotated[float, typer.Option(min=0.01, help="Channel multiplier of both networks: 1 is the published size; less for quick trials.", rich_help_panel=TRAIN_PANEL)] = 1.0,
    resume: Annotated[bool, typer.Option(help="Continue ROOT/runs/NAME from its last checkpoint, data stream included.", rich_help_panel=TRAIN_PANEL)] = False,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, the data order and the dropout noise.", rich_help_panel=TRAIN_PANEL)] = 0,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.", rich_help_panel=DEVICE_PANEL)] = "auto",
    precision: Annotated[str, typer.Option(help="auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.", rich_help_panel=DEVICE_PANEL)] = "auto",
    deterministic: Annotated[bool, typer.Option(help="Deterministic algorithms only (slower; makes resumed runs repeat an uninterrupted one exactly on CPU).", rich_help_panel=DEVICE_PANEL)] = False,
    compile_generator: Annotated[bool, typer.Option("--compile", help="torch.compile the generator (worth it on long GPU runs; the first steps are slow).", rich_help_panel=DEVICE_PANEL)] = False,
    workers: Annotated[int, typer.Option(min=0, help="Loader worker processes decoding shards.", rich_help_panel=RUN_PANEL)] = 4,
    log_every: Annotated[int, typer.Option(min=1, help="Write losses and images/s (metrics.jsonl, TensorBoard) every N steps.", rich_help_panel=RUN_PANEL)] = 50,
    sample_every: Annotated[int, typer.Option(min=1, help="Write a sample grid (sketch | hint | draft | output | truth) every N steps.", rich_help_panel=RUN_PANEL)] = 500,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Save the whole training state every N steps (and at the end, and on Ctrl-C).", rich_help_panel=RUN_PANEL)] = 1000,
    record_keys: Annotated[bool, typer.Option(help="Write each step's sample keys to ROOT/runs/NAME/keys/rank<R>.txt (an audit of what every rank trained on).", rich_help_panel=RUN_PANEL)] = False,
    content_loss: Annotated[bool, typer.Option(help="Use the recipe's VGG16 content loss (needs torchvision's vgg16-397923af.pth, see `pipe weights list`); --no-content-loss trains without it and records that.", rich_help_panel=TRAIN_PANEL)] = True,
    line_loss: Annotated[bool, typer.Option(help="Use the recipe's line loss through the Line Detection Model (train it first: `pipe train ldm ROOT --recipe lee2020`).", rich_help_panel=TRAIN_PANEL)] = True,
    drafts_from: Annotated[Optional[Path], typer.Option(help="Refinement stages: drafts made on the fly by this trained draft checkpoint instead of the shards' synthesized ones.", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    feature_encoder: Annotated[Optional[Path], typer.Option(help="xu2020 refine: encode the draft with torchvision's ImageNet GoogLeNet from this file (googlenet-1378be20.pth) instead of a trained encoder.", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    vgg_weights: Annotated[Optional[Path], typer.Option(help="torchvision's VGG16 state dict. (default: the weights folder)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    ldm_weights: Annotated[Optional[Path], typer.Option(help="LDM checkpoint to read (draft) or also write (ldm stage). (default: the weights folder's ldm.pt)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
) -> None:
    """Train one stage of a recipe on the shards of ROOT, on the GPU when there is one.

    Under `torchrun --nproc-per-node N pipe train ...` every process trains on its own shards with
    the same number of steps, and only rank 0 writes logs and checkpoints.
    """
    from train.trainer import TrainConfig, run_training

    if stage not in ("draft", "refine", "ldm"):
        raise PipeError(f"STAGE must be draft, refine or ldm, got {stage!r}")
    config = TrainConfig(
        root=root.resolve(), recipe=recipe, stage=stage, run=name, steps=steps, batch_size=batch_size, size=size, width=width,
        workers=workers, device=device, precision=precision, seed=seed, log_every=log_every, sample_every=sample_every,
        checkpoint_every=checkpoint_every, deterministic=deterministic, resume=resume, record_keys=record_keys, compile=compile_generator,
        content_loss=content_loss, line_loss=line_loss, vgg_weights=vgg_weights, ldm_weights=ldm_weights, drafts_from=drafts_from, feature_encoder=feature_encoder,
    )
    summary = run_training(config)
    if summary.last_step == summary.first_step:
        console.print(f"[green]nothing to do[/]: {summary.run_dir} is already at step {summary.last_step} (raise --steps to train on)")
        return
    losses = ", ".join(f"{k} {v:.4f}" for k, v in summary.last_losses.items())
    console.print(
        f"trained steps {summary.first_step + 1}-{summary.last_step} in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.1f} images/s); last losses: {losses}\n"
        f"run folder: {summary.run_dir} (checkpoints/last.pt, samples/, metrics.jsonl, tb/)"
    )


@app.command()
def colorize(
    sketches: Annotated[Path, typer.Argument(help="A sketch (PNG/JPEG, black lines on white) or a folder of them; any size.")],
    draft: Annotated[Path, typer.Option(help="Checkpoint of a trained draft stage (ROOT/runs/NAME/checkpoints/last.pt).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the coloured images (<sketch name>.png, the sketch's size).")],
    refine: Annotated[Optional[Path], typer.Option(help="Checkpoint of a refinement stage, fed the draft's output. (default: draft only)", show_default=False)] = None,
    hints: Annotated[Optional[Path], typer.Option(help="RGBA hint PNG (opaque where a colour is given), or a folder of <sketch name>.png hints. (default: none)", show_default=False)] = None,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Sketches per batch.")] = 8,
) -> None:
    """Colour sketches with trained checkpoints: scaled and padded in, cropped and resized back out."""
    from train.colorize import colorize as run_colorize
    from train.colorize import sketches_in
    from train.trainer import resolve_device

    try:
        files = sketches_in(sketches)
        written = run_colorize(files, out, draft, refine, hints, resolve_device(device), batch_size)
    except (FileNotFoundError, ValueError) as exc:
        raise PipeError(str(exc)) from None
    console.print(f"coloured {len(written)} sketch(es) into {out}")


EVAL_PANEL = "Scoring"


def _eval_epilog() -> str:
    from pipeline.eval.hints import __doc__ as settings_doc

    return "[bold]Hint settings[/] (--hints, comma-separated; each is coloured and scored separately):\n\n" + "\n\n".join(
        line.strip() for line in settings_doc.strip().splitlines()[2:] if line.strip()
    )


@app.command("eval", epilog=_eval_epilog())
def eval_command(
    root: Annotated[Optional[Path], typer.Argument(help="The dataset folder (after `pipe shard`): reads ROOT/shards/SPLIT, writes ROOT/reports/NAME.", show_default=False)] = None,
    draft: Annotated[Optional[Path], typer.Option(help="Checkpoint of a trained draft stage (ROOT/runs/NAME/checkpoints/last.pt).", show_default=False)] = None,
    refine: Annotated[Optional[Path], typer.Option(help="Checkpoint of a refinement stage, fed the draft's output. (default: draft only)", show_default=False)] = None,
    split: Annotated[str, typer.Option(help="Which shard split to score.")] = "val",
    hints: Annotated[str, typer.Option(help="Hint settings to colour under: none gives FID, cfid gives Lee & Lee's C-FID (see below).")] = "none,cfid",
    name: Annotated[Optional[str], typer.Option(help="Report name: ROOT/reports/NAME. (default: the runs' names and the split)", show_default=False)] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(help="Folder holding pt_inception-2015-12-05-6726825d.pth (pytorch-fid's FID Inception; torch-fidelity's weights-inception-2015-12-05-6726825d.pth also works). (default: the weights folder, see `pipe weights list`)", show_default=False, rich_help_panel=EVAL_PANEL)] = None,
    fid: Annotated[bool, typer.Option(help="Compute FID and KID (needs the Inception weights); --no-fid scores PSNR, SSIM and the hint scores only.", rich_help_panel=EVAL_PANEL)] = True,
    kid_subsets: Annotated[int, typer.Option(min=1, help="KID: random subsets to average over.", rich_help_panel=EVAL_PANEL)] = 100,
    kid_subset_size: Annotated[int, typer.Option(min=2, help="KID: samples per subset (capped by the split's size).", rich_help_panel=EVAL_PANEL)] = 1000,
    limit: Annotated[Optional[int], typer.Option(min=2, help="Score only the first N samples of the split. (default: all)", show_default=False, rich_help_panel=EVAL_PANEL)] = None,
    seed: Annotated[int, typer.Option(help="Seed of KID's subsets and of points/patches/blur hint draws (cfid hints depend on the key only).", rich_help_panel=EVAL_PANEL)] = 0,
    grid: Annotated[int, typer.Option(min=0, help="Samples per hint setting shown in the report's image grid.", rich_help_panel=EVAL_PANEL)] = 8,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per batch.", rich_help_panel=DEVICE_PANEL)] = 16,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.", rich_help_panel=DEVICE_PANEL)] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Loader processes decoding the shards (0: in this process). The scores do not depend on it. (default: 4, or the CPUs if fewer)", show_default=False, rich_help_panel=DEVICE_PANEL)] = min(4, default_workers()),
    out: Annotated[Optional[Path], typer.Option(help="Report folder. (default: ROOT/reports/NAME)", show_default=False)] = None,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option(help="Print two report.json files side by side instead (no ROOT needed).", show_default=False)] = None,
) -> None:
    """Score checkpoints on a split: FID, KID and C-FID, hint adherence, colour containment, PSNR and SSIM.

    Every sample of the split is coloured under each hint setting; FID-family scores use the FID
    Inception network with the reference preprocessing. Writes report.json and a self-contained
    report.html (tables and a sketch | hints | output | truth grid).
    """
    from pipeline.eval.report import compare_table, read_report, summary_table, write_report

    if compare is not None:
        try:
            console.print(compare_table(read_report(compare[0]), read_report(compare[1])))
        except (FileNotFoundError, ValueError) as exc:
            raise PipeError(str(exc)) from None
        return
    if root is None or draft is None:
        raise PipeError("give ROOT and --draft CHECKPOINT (or --compare A.json B.json)")
    from pipeline.eval.hints import parse_settings
    from train.networks.inception import inception_weights_in
    from pipeline.eval.run import REPORTS_DIR, EvalConfig, run_eval

    try:
        config = EvalConfig(
            root=root, draft=draft, refine=refine, split=split, settings=parse_settings(hints), name=name,
            inception_weights=inception_weights_in(weights_dir) if weights_dir else None, fid=fid,
            kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, batch_size=batch_size, device=device, workers=workers, limit=limit,
            grid_samples=grid, seed=seed,
        )
        report, grids = run_eval(config)
    except (FileNotFoundError, ValueError) as exc:
        raise PipeError(str(exc)) from None
    folder = out or root / REPORTS_DIR / report["name"]
    json_path, html_path = write_report(report, grids, folder)
    console.print(summary_table(report))
    console.print(f"report: {html_path} (numbers: {json_path})")


weights_app = typer.Typer(help="Model weights for the neural extractors and the trainers' feature networks: convert published files, see what is installed.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("convert")
def weights_convert(
    model: Annotated[str, typer.Argument(help="Which model the file is: sketchkeras.")],
    source: Annotated[Path, typer.Argument(help="The published file (sketchKeras: mod.h5 from github.com/lllyasviel/sketchKeras/releases).")],
    out: Annotated[Optional[Path], typer.Argument(help="Where to write the PyTorch file. (default: the path `pipe extract` looks in)", show_default=False)] = None,
) -> None:
    """Convert a published weights file for pipe: read with h5py, rebuilt from its own model_config."""
    from extractors.sketchkeras.keras_file import KerasFileError
    from extractors.sketchkeras.weights import convert_keras_model
    from extractors.weights import default_weights_path

    if model != "sketchkeras":
        raise PipeError(f"pipe can convert: sketchkeras (got {model!r})")
    if not source.is_file():
        raise PipeError(f"{source} not found: download mod.h5 from github.com/lllyasviel/sketchKeras/releases")
    target = out or default_weights_path(model)
    try:
        report = convert_keras_model(source, target)
    except KerasFileError as exc:
        raise PipeError(str(exc)) from None
    console.print(
        f"converted {source.name} (Keras {report.keras_version or '?'}, {report.backend or '?'} backend, "
        f"{report.layers} layers, {report.parameters:,} parameters, sha256 {report.sha256[:12]}) -> {target}"
    )


@weights_app.command("list")
def weights_list() -> None:
    """Where each neural method looks for its weights, and whether the file is there."""
    from extractors.weights import SOURCES, default_weights_path

    for name, source in SOURCES.items():
        path = default_weights_path(name)
        state = "[green]present[/]" if path.is_file() else "[yellow]missing[/]"
        console.print(f"{name}: {path} ({state}); {source.how_to_get}")


@app.command()
def status(root: Annotated[Path, typer.Argument(help="The dataset folder.")]) -> None:
    """Counts by status and reason for every stage ledger in ROOT: where every sample went."""
    from pipeline.status import show_status

    if show_status(root):
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Argument(help="Folder for the demo inputs and dataset.")] = Path("pipe-demo"),
    images: Annotated[int, typer.Option(min=1, help="How many plain illustrations the board serves (plus one post per misbehaviour).")] = 24,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 0,
    workers: Workers = default_workers(),
) -> None:
    """Serve generated illustrations from a local fixture board (with misbehaving posts), crawl it, and prepare the result.

    Nothing leaves the machine: the board listens on 127.0.0.1 only. OUT/expected.json says what
    every post should become; `pipe status OUT/dataset` shows what did.
    """
    from pipeline.demo.run import run_demo

    run_demo(out, images, seed, RunnerConfig(workers=workers))


def _verbosity() -> int:
    """0, 1 or 2 for no -v, -v and -vv (the root logger level `_main` set), for child processes."""
    level = logging.getLogger().getEffectiveLevel()
    return 2 if level <= logging.DEBUG else 1 if level <= logging.INFO else 0


def _choice(enum_type, value: str, option: str):
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_type)
        raise PipeError(f"{option} must be one of: {allowed} (got {value!r})") from None


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; also callable from tests with an argument list."""
    try:
        app(args=argv, prog_name="pipe")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except PipeError as error:
        console.print(f"[red]error:[/] {error}", soft_wrap=True)  # one line, whatever the width: greppable in logs
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
