"""`pipe weights`: fetch and convert published weights files, convert old training checkpoints, list what is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app
from pipeline.console import console
from pipeline.errors import PipeError

weights_app = typer.Typer(help="Model weights for the neural extractors and the trainers' feature networks: fetch or convert published files, see what is installed.", no_args_is_help=True)
app.add_typer(weights_app, name="weights")


@weights_app.command("convert")
def weights_convert(
    model: Annotated[str, typer.Argument(help="Which model the file is: sketchkeras.")],
    source: Annotated[Path, typer.Argument(help="The published file (sketchKeras: mod.h5 from github.com/lllyasviel/sketchKeras/releases).")],
    out: Annotated[Optional[Path], typer.Argument(help="Where to write the PyTorch file. (default: the path `pipe extract` looks in)", show_default=False)] = None,
) -> None:
    """Convert a published weights file for pipe: read with h5py, rebuilt from its own model_config."""
    from extractors.weights import default_weights_path
    from pipeline.weights_fetch import convert_published

    if model != "sketchkeras":
        raise PipeError(f"pipe can convert: sketchkeras (got {model!r})")
    if not source.is_file():
        raise PipeError(
            f"{source} not found: download mod.h5 from github.com/lllyasviel/sketchKeras/releases "
            "(or let `pipe weights fetch sketchkeras` download and convert it)"
        )
    console.print(convert_published(model, source, out or default_weights_path(model)), soft_wrap=True)


CONVERT_CHECKPOINT_HELP = (
    "Convert a training checkpoint of an earlier pipe (pipe.checkpoint/1) to the current format, weights unchanged.\n\n"
    "[bold red]WARNING: this runs the code the file holds.[/] Earlier checkpoints are full Python pickles: "
    "reading one executes whatever its author put in it (any command, with your permissions). Convert only "
    "files you wrote yourself or got from someone you trust. pipe loads nothing else this way: every other "
    "command reads checkpoints as weights alone and refuses these files.\n\n"
    "The converted file holds only tensors, numbers and strings, with a SHA-256 of its bytes; it replaces "
    "CHECKPOINT (so `pipe train --resume` finds it) unless --output names a new file."
)


@weights_app.command("convert-checkpoint", help=CONVERT_CHECKPOINT_HELP)
def weights_convert_checkpoint(
    checkpoint: Annotated[Path, typer.Argument(help="The old checkpoint (ROOT/runs/NAME/checkpoints/last.pt).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the converted file here instead of replacing CHECKPOINT (must not exist).", show_default=False)] = None,
) -> None:
    from train.checkpoint import FORMAT, LEGACY_FORMAT, read_checkpoint
    from train.checkpoint_legacy import convert_legacy_checkpoint

    if not checkpoint.is_file():
        raise PipeError(f"{checkpoint}: no such checkpoint file")
    if output is not None and output.exists() and output.resolve() != checkpoint.resolve():
        raise PipeError(f"--output {output} exists: remove it or choose another path")
    try:
        read_checkpoint(checkpoint)
    except ValueError:
        pass
    else:
        raise PipeError(f"{checkpoint} is a {FORMAT} checkpoint already: nothing to convert")
    target = output or checkpoint
    try:
        payload = convert_legacy_checkpoint(checkpoint, target)
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    console.print(f"converted {checkpoint} ({LEGACY_FORMAT}, step {payload['step']}) to {target} ({FORMAT}): it now loads as weights alone", soft_wrap=True)


def _fetch_help() -> str:
    from extractors.weights import SOURCES, WEIGHTS_ENV

    names = "\n".join(
        f"- [bold]{name}[/]: {source.file_name}, for {source.used_by}; from {source.url}"
        + ("" if source.sha256 else " (no published SHA-256: checked by converting it)")
        for name, source in SOURCES.items()
        if source.downloadable
    )
    trained = ", ".join(f"{name} ({source.file_name}, for {source.used_by})" for name, source in SOURCES.items() if not source.downloadable)
    return (
        "Download published weights files from their official sources, verified, for a machine with a network.\n\n"
        f"NAME is one of these, or [bold]all[/] (every one not yet present):\n\n{names}\n\n"
        f"Not downloadable: {trained}: pipe trains it.\n\n"
        f"Files go to the weights folder, ${WEIGHTS_ENV} or ~/.cache/pipe/weights, where the commands look "
        "(`pipe weights list` shows it). Each download is checked against a pinned SHA-256 before it is kept; "
        "a file already there is verified and left alone (--force replaces it); a cut transfer resumes on the "
        "next run. Without a network here, run this where there is one and copy the folder.\n\n"
        "--url fetches one NAME from a mirror instead (the same pinned SHA-256 is checked). "
        "Exit status: 0 all present, 1 a download failed (one line per name), 2 a usage error."
    )


@weights_app.command("fetch", help=_fetch_help())
def weights_fetch(
    name: Annotated[str, typer.Argument(help="Which file: inception, vgg16, googlenet, sketchkeras, or all.", show_default=False)],
    url: Annotated[Optional[str], typer.Option("--url", help="Download NAME from this mirror URL instead of the official one (a single NAME only; its SHA-256 is still checked).", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again and replace a file already in the weights folder (also one that fails its check).")] = False,
) -> None:
    from pipeline.weights_fetch import fetch, resolve_names

    names = resolve_names(name, url)
    outcomes = fetch(names, url=url, force=force)
    if len(outcomes) > 1:
        counts = {status: sum(o.status == status for o in outcomes) for status in ("fetched", "present", "failed")}
        console.print(f"{counts['fetched']} fetched, {counts['present']} already present, {counts['failed']} failed")
    if any(o.status == "failed" for o in outcomes):
        raise typer.Exit(1)


@weights_app.command("list")
def weights_list() -> None:
    """Where each neural method looks for its weights, and whether the file is there."""
    from extractors.weights import SOURCES, default_weights_path

    for name, source in SOURCES.items():
        path = default_weights_path(name)
        state = "[green]present[/]" if path.is_file() else "[yellow]missing[/]"
        console.print(f"{name}: {path} ({state}); {source.how_to_get}")
