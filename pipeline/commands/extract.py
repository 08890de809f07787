"""`pipe extract`: line art from every prepared image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app, lazy_epilog
from pipeline.commands.common import DEVICE_PANEL, RUN_PANEL, ExecutorOption, RayAddress, Workers, executor_choice
from pipeline.errors import PipeError
from pipeline.executors import default_workers

EXTRACT_PANEL = "Methods"
POST_PANEL = "Post-processing (any method)"


def _methods_epilog() -> str:
    from extractors.methods import METHODS  # noqa: PLC0415 - PyTorch: only for `pipe extract --help`

    lines = ["[bold]Methods and their options[/] (set with --set METHOD.OPTION=VALUE; several comma-separated values are drawn per sample):\n\n"]
    for method in METHODS.values():
        options = ", ".join(f"{o.name}={','.join(map(str, o.default)) if isinstance(o.default, tuple) else o.default}" for o in method.options)
        lines.append(f"[bold]{method.name}[/]: {method.summary}" + (f". {options}" if options else "") + "\n\n")
    return "".join(lines)


@app.command(cls=lazy_epilog(_methods_epilog))
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
    executor: ExecutorOption = "local",
    ray_address: RayAddress = None,
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
    idle = sorted(set(overrides) - set(methods))
    if idle:
        raise PipeError(f"--set {idle[0]}.…: {idle[0]} is not among --method {','.join(methods)} (add it there, or drop the --set)")
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
        executor=executor_choice(executor, ray_address),
        ray_address=ray_address,
        size=size,
        equalize=equalize,
        binarize=binarize,
        weights=weight_paths,
        png_compression=png_compression,
        flush_seconds=save_every,
        redo=redo,
    )
    print_run_report(run_extract(config))
