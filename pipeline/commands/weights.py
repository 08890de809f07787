"""`pipe weights`: convert published weights files, list what is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app
from pipeline.console import console
from pipeline.errors import PipeError

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
