"""The Starlette application: the page, POST /api/colorize, GET /api/models and GET /api/stats.

Errors the sender can fix answer 4xx with JSON `{"error": "..."}`; the request body is capped
(`max_upload_bytes`, 413 from the Content-Length header or as soon as a streamed body passes it).
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.serve.batcher import Batcher
from pipeline.serve.models import STAGES, Job, ServedModels
from pipeline.serve.uploads import BadInput, decode_hints, decode_reference, decode_sketch, encode_png

STATIC = Path(__file__).resolve().parent / "static"
FIELDS = ("sketch", "hints", "reference", "stage")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class UploadTooLarge(Exception):
    """The request body passed the server's upload limit while it was being read."""


class UploadLimit:
    """ASGI middleware: 413 for a request whose body is over `max_bytes` (declared or streamed).

    The rest of an oversized body is read and dropped (up to `drain_bytes`) before the answer, so a
    client that sends its whole body before reading (most HTTP libraries) gets the 413 rather than a
    broken pipe; a client that asked `Expect: 100-continue` is answered without sending it.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(4 * max_bytes, 64 * 2**20)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            if headers.get(b"expect", b"").lower() != b"100-continue" and int(declared) <= self.drain_bytes:
                await self._drain(receive, 0)
            await error(413, self.message(int(declared)))(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                if message.get("more_body", False):
                    await self._drain(receive, seen)
                raise UploadTooLarge(self.message(seen, streamed=True))
            return message

        await self.app(scope, counted, send)

    async def _drain(self, receive: Receive, seen: int) -> None:
        """Read and drop the rest of the body, up to `drain_bytes` in all."""
        while seen <= self.drain_bytes:
            message = await receive()
            seen += len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    def message(self, size: int, streamed: bool = False) -> str:
        what = "upload (still streaming)" if streamed else f"upload of {size / 2**20:.1f} MiB"
        return f"{what} is over this server's limit of {self.max_bytes / 2**20:g} MiB (pipe serve --max-upload-mb)"


async def _read_field(form: FormData, name: str) -> bytes | None:
    value = form.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        return await value.read()
    return value.encode()


async def _job(request: Request, models: ServedModels) -> Job:
    """The request's form, decoded and checked (BadInput otherwise)."""
    try:
        form = await request.form(max_files=len(FIELDS), max_fields=len(FIELDS))
    except UploadTooLarge as exc:
        raise BadInput(413, str(exc)) from None
    except HTTPException as exc:  # malformed multipart body
        raise BadInput(400, f"cannot parse the form: {exc.detail}") from None
    unknown = sorted(set(form.keys()) - set(FIELDS))
    if unknown:
        raise BadInput(400, f"unknown field(s) {', '.join(unknown)}: send {', '.join(FIELDS)}")
    stage = str(form.get("stage") or "final")
    if stage not in STAGES:
        raise BadInput(400, f"stage must be draft or final, got {stage!r}")
    sketch_bytes = await _read_field(form, "sketch")
    if sketch_bytes is None:
        raise BadInput(400, "no sketch: send the sketch image as the multipart/form-data file field `sketch`")
    hint_bytes = await _read_field(form, "hints")
    reference_bytes = await _read_field(form, "reference")
    problem = models.palette_problem()
    if problem:
        raise BadInput(422, problem)

    def decode() -> Job:
        sketch = decode_sketch(sketch_bytes)
        if min(sketch.shape) * models.size < max(sketch.shape) / 2:
            raise BadInput(422, f"sketch is {sketch.shape[1]}x{sketch.shape[0]}: too thin to place at the model's {models.size} px")
        hints = decode_hints(hint_bytes, sketch.shape) if hint_bytes else None
        if reference_bytes:
            decode_reference(reference_bytes)  # checked, but no served recipe reads it (palette recipes are refused above)
        return Job(sketch, hints, "final" if stage == "final" and models.refine is not None else "draft")

    return await run_in_threadpool(decode)


def create_app(models: ServedModels, max_upload_bytes: int = 20 * 2**20, batch_window_s: float = 0.01, max_batch: int = 8) -> Starlette:
    """The web app over loaded models; `app.state.batcher.stats` counts requests and batches."""
    batcher: Batcher[Job, object] = Batcher(models.colour, window_s=batch_window_s, max_batch=max_batch)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def list_models(request: Request) -> Response:
        return JSONResponse({
            "models": models.describe(),
            "device": str(models.device),
            "takes_hints": models.takes_hints,
            "palette_problem": models.palette_problem(),
            "max_upload_mb": max_upload_bytes / 2**20,
        })

    async def stats(request: Request) -> Response:
        return JSONResponse(batcher.stats.as_dict())

    async def colorize(request: Request) -> Response:
        started = time.perf_counter()
        try:
            job = await _job(request, models)
        except BadInput as exc:
            return error(exc.status, exc.message)
        image, batch_size = await batcher.submit(job)
        body = await run_in_threadpool(encode_png, image)
        model = models.refine if job.stage == "final" and models.refine is not None else models.draft
        headers = {
            "X-Pipe-Stage": job.stage,
            "X-Pipe-Model": f"{model.name} step {model.step}",
            "X-Pipe-Batch-Size": str(batch_size),
            "X-Pipe-Milliseconds": f"{(time.perf_counter() - started) * 1000:.1f}",
            "Cache-Control": "no-store",
        }
        if job.hints is not None and not models.takes_hints:
            headers["X-Pipe-Hints"] = "ignored: no loaded model reads hints"
        return Response(body, media_type="image/png", headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail))

    async def server_error(request: Request, exc: Exception) -> Response:
        return error(500, f"{type(exc).__name__}: {exc}")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.close()

    routes = [
        Route("/", index),
        Route("/api/models", list_models),
        Route("/api/stats", stats),
        Route("/api/colorize", colorize, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error, Exception: server_error})
    app.add_middleware(UploadLimit, max_bytes=max_upload_bytes)
    app.state.batcher = batcher
    app.state.models = models
    return app
