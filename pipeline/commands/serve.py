"""`pipe serve`: a local web app (and HTTP API) that colours uploaded sketches with trained checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app
from pipeline.console import console
from pipeline.errors import PipeError

WEIGHTS_HELP = "Which of a checkpoint's generators: ema, raw, or auto (the EMA once it has warmed up, raw before)."


@app.command()
def serve(
    draft: Annotated[Path, typer.Option(help="Checkpoint of a trained draft stage (ROOT/runs/NAME/checkpoints/last.pt).")],
    refine: Annotated[Optional[Path], typer.Option(help="Checkpoint of a refinement stage, fed the draft's output; the page shows both. (default: draft only)", show_default=False)] = None,
    host: Annotated[str, typer.Option(help="Address to listen on; the default is this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: any free one).")] = 8000,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.")] = "auto",
    weights: Annotated[str, typer.Option(help=WEIGHTS_HELP)] = "auto",
    max_upload_mb: Annotated[float, typer.Option(min=0.01, help="Largest request body (sketch + hints + reference), in MiB; larger ones get 413.")] = 20.0,
    batch_window_ms: Annotated[float, typer.Option(min=0.0, help="How long the first waiting request collects others into one device batch.")] = 10.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Most requests in one device batch.")] = 8,
    max_pixels: Annotated[int, typer.Option(min=1, help="Largest image (width x height) a request may send; larger ones get 413, read from the header before decoding.")] = 40_000_000,
    max_side: Annotated[int, typer.Option(min=1, help="Longest side of a result: a larger sketch is scaled down (decoded reduced where the format allows) and coloured and answered at this size; at least the model's size.")] = 2048,
    queue: Annotated[int, typer.Option(min=1, help="Most colouring requests held at once (reading, decoding, waiting, colouring); more get 503 with Retry-After.")] = 16,
) -> None:
    """Serve a page to colour sketches interactively (hints, undo, downloads) and POST /api/colorize for scripts."""
    from pipeline.serve.app import Limits, create_app
    from pipeline.serve.memory import serve_big_buffers_by_mmap
    from pipeline.serve.models import ServedModels
    from pipeline.serve.server import bind, make_server, url_of
    from train.device import resolve_device

    for role, path in (("draft", draft), ("refine", refine)):
        if path is not None and not path.is_file():
            raise PipeError(f"--{role} {path}: no such checkpoint file")
    try:
        models = ServedModels.load(draft, refine, resolve_device(device), weights)
    except (FileNotFoundError, ValueError) as exc:
        raise PipeError(str(exc)) from None
    if max_side < models.size:
        raise PipeError(f"--max-side {max_side} is under the model's {models.size} px: give at least {models.size}")
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise PipeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port or --host") from None
    limits = Limits(max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, max_side=max_side, queue=queue)
    serve_big_buffers_by_mmap()  # this process is the server: a request's big buffers are unmapped when freed
    application = create_app(models, batch_window_s=batch_window_ms / 1000, max_batch=max_batch, limits=limits)
    used = ", ".join(f"{role} {model.name} step {model.step} ({model.weights} weights, {model.size} px)" for role, model in models.models)
    console.print(f"serving {used} on {models.device}", soft_wrap=True)
    if models.palette_problem():
        console.print(f"[yellow]warning:[/] {models.palette_problem()}; /api/colorize will answer 422", soft_wrap=True)
    console.print(f"listening on {url_of(sock)} (open it in a browser; Ctrl-C stops)", soft_wrap=True)
    make_server(application).run(sockets=[sock])
