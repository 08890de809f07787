"""The Starlette application: the page, POST /api/colorize, GET /api/models and GET /api/stats.

Errors the sender can fix answer 4xx with JSON `{"error": "..."}`; the request body is capped
(`max_upload_bytes`, 413 from the Content-Length header or as soon as a streamed body passes it),
an image over `max_pixels` is refused from its header (413), and at most `queue` colouring requests
are held at once (read, decoded, waiting or coloured): one more is answered 503 with Retry-After,
so a burst costs a bounded amount of memory and time. Once no request is held, freed buffers go
back to the system (`memory.trim_freed_memory`). Each refusal is one info line in the log.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator

import anyio
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
from pipeline.serve.memory import trim_freed_memory
from pipeline.serve.models import STAGES, Job, ServedModels
from pipeline.serve.uploads import DEFAULT_MAX_PIXELS, BadInput, check_reference, decode_hints, decode_sketch, encode_png

STATIC = Path(__file__).resolve().parent / "static"
FIELDS = ("sketch", "hints", "reference", "stage")
DECODE_THREADS = 2  # requests decoding images at once: each may hold a full-size sketch
log = logging.getLogger("pipeline.serve")
# python-multipart logs a warning for every malformed body it meets; the 400 answer says it once.
for _parser_logger in ("python_multipart", "multipart"):
    logging.getLogger(_parser_logger).setLevel(logging.ERROR)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


@dataclass(frozen=True)
class Limits:
    """What one request may cost: body bytes, image pixels, the result's long side, requests held at once."""

    max_upload_bytes: int = 20 * 2**20
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = 2048
    queue: int = 16

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_side", "queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


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


async def _form(request: Request) -> FormData:
    try:
        return await request.form(max_files=len(FIELDS), max_fields=len(FIELDS))
    except UploadTooLarge as exc:
        raise BadInput(413, str(exc)) from None
    except HTTPException as exc:  # malformed multipart body
        raise BadInput(400, f"the request is not valid multipart/form-data ({exc.detail}): send the sketch as the file field `sketch`, as a browser form or `curl -F sketch=@FILE` does") from None


async def _job(request: Request, models: ServedModels, limits: Limits, decoders: anyio.CapacityLimiter) -> tuple[Job, str | None]:
    """The request's form, decoded and checked (BadInput otherwise), and the sketch's sent size when it was scaled down."""
    form = await _form(request)
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
    await form.close()
    problem = models.palette_problem()
    if problem:
        raise BadInput(422, problem)
    side = max(limits.max_side, models.size)

    def decode() -> tuple[Job, str | None]:
        sketch = decode_sketch(sketch_bytes, limits.max_pixels, side)
        if min(sketch.height, sketch.width) * models.size < max(sketch.height, sketch.width) / 2:
            raise BadInput(422, f"sketch is {sketch.width}x{sketch.height}: too thin to place at the model's {models.size} px")
        hints = decode_hints(hint_bytes, sketch, limits.max_pixels) if hint_bytes else None
        if reference_bytes:
            check_reference(reference_bytes, limits.max_pixels)
        job = Job(sketch.grey, hints, "final" if stage == "final" and models.refine is not None else "draft")
        return job, f"{sketch.width}x{sketch.height}" if sketch.scaled else None

    return await anyio.to_thread.run_sync(decode, limiter=decoders)


async def _drain(request: Request) -> None:
    """Read and drop the body, so a client that sends all of it before reading gets the answer."""
    try:
        async for _ in request.stream():
            pass
    except UploadTooLarge:
        pass


def _http_message(request: Request, exc: HTTPException) -> str:
    """What a routing refusal tells the user: the API to use rather than a bare status text."""
    path = request.url.path
    if exc.status_code == 404:
        return f"no such page: {path} (the API is GET /api/models, GET /api/stats and POST /api/colorize)"
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        usage = " (multipart/form-data with the file field `sketch`)" if path == "/api/colorize" else ""
        return f"{request.method} {path} is not served: use {allowed}{usage}"
    return str(exc.detail)


class Held:
    """How many colouring requests the server holds now (reading, decoding, waiting, colouring)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def busy_message(self) -> str:
        return f"the server is busy: it holds {self.count} colouring requests, its limit (pipe serve --queue {self.limit}); try again in a moment"


def refused(request: Request, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    log.info("refused %s %s: %d %s", request.method, request.url.path, status, message)
    return error(status, message, headers)


class Endpoints:
    """The routes' handlers over loaded models, a batcher and the limits."""

    def __init__(self, models: ServedModels, batcher: Batcher, limits: Limits) -> None:
        self.models = models
        self.batcher = batcher
        self.limits = limits
        self.held = Held(limits.queue)
        self.decoders: anyio.CapacityLimiter | None = None  # made in the server's event loop (lifespan)

    def retry_after(self) -> str:
        """Seconds until the requests held now are likely answered: their batches at the mean batch time."""
        stats = self.batcher.stats
        per_batch = stats.device_seconds / stats.batches if stats.batches else 1.0
        return str(max(1, math.ceil(per_batch * math.ceil(self.held.count / self.batcher.max_batch))))

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def list_models(self, request: Request) -> Response:
        models, limits = self.models, self.limits
        return JSONResponse({
            "models": models.describe(),
            "device": str(models.device),
            "takes_hints": models.takes_hints,
            "palette_problem": models.palette_problem(),
            "max_upload_mb": limits.max_upload_bytes / 2**20,
            "max_pixels": limits.max_pixels,
            "max_side": max(limits.max_side, models.size),
            "queue": limits.queue,
        })

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self.batcher.stats.as_dict())

    async def colorize(self, request: Request) -> Response:
        if self.held.count >= self.held.limit:
            message = self.held.busy_message()
            await _drain(request)
            return refused(request, 503, message, {"Retry-After": self.retry_after()})
        self.held.count += 1
        try:
            return await self._answer(request)
        finally:
            self.held.count -= 1
            if self.held.count == 0:  # a burst is over: its buffers go back to the system
                await run_in_threadpool(trim_freed_memory)

    async def _answer(self, request: Request) -> Response:
        started = time.perf_counter()
        if self.decoders is None:
            self.decoders = anyio.CapacityLimiter(DECODE_THREADS)
        try:
            job, sent_size = await _job(request, self.models, self.limits, self.decoders)
        except BadInput as exc:
            return refused(request, exc.status, exc.message)
        image, batch_size = await self.batcher.submit(job)
        body = await run_in_threadpool(encode_png, image)
        model = self.models.refine if job.stage == "final" and self.models.refine is not None else self.models.draft
        headers = {
            "X-Pipe-Stage": job.stage,
            "X-Pipe-Model": f"{model.name} step {model.step}",
            "X-Pipe-Batch-Size": str(batch_size),
            "X-Pipe-Milliseconds": f"{(time.perf_counter() - started) * 1000:.1f}",
            "Cache-Control": "no-store",
        }
        if sent_size is not None:
            headers["X-Pipe-Scaled-From"] = sent_size
        if job.hints is not None and not self.models.takes_hints:
            headers["X-Pipe-Hints"] = "ignored: no loaded model reads hints"
        return Response(body, media_type="image/png", headers=headers)

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return refused(request, exc.status_code, _http_message(request, exc), exc.headers)

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)  # the detail stays in the log
        return error(500, f"the server failed on this request ({type(exc).__name__}); its log says more")


def create_app(models: ServedModels, max_upload_bytes: int = 20 * 2**20, batch_window_s: float = 0.01, max_batch: int = 8, limits: Limits | None = None) -> Starlette:
    """The web app over loaded models; `app.state.batcher.stats` counts requests and batches.
    `limits` (default `Limits(max_upload_bytes)`) bounds what one request and a burst may cost."""
    limits = limits or Limits(max_upload_bytes=max_upload_bytes)
    batcher: Batcher[Job, object] = Batcher(models.colour, window_s=batch_window_s, max_batch=max_batch)
    endpoints = Endpoints(models, batcher, limits)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        endpoints.decoders = anyio.CapacityLimiter(DECODE_THREADS)
        await batcher.start()
        yield
        await batcher.close()

    routes = [
        Route("/", endpoints.index),
        Route("/api/models", endpoints.list_models),
        Route("/api/stats", endpoints.stats),
        Route("/api/colorize", endpoints.colorize, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {HTTPException: endpoints.http_error, Exception: endpoints.server_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers)
    app.add_middleware(UploadLimit, max_bytes=limits.max_upload_bytes)
    app.state.batcher = batcher
    app.state.models = models
    app.state.limits = limits
    return app
