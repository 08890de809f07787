"""Requests that arrive together share one forward pass on the device.

`Batcher.submit` puts a job on a queue and waits for its answer. One worker task takes the first job,
keeps collecting for `window_s` (or until `max_batch` jobs), runs the batch in a thread (the event
loop keeps accepting requests meanwhile; they form the next batch) and answers each job. One batch
runs at a time, so the device never holds two.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

log = logging.getLogger(__name__)

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")


@dataclass
class BatchStats:
    """What the batcher has done so far (GET /api/stats)."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    sizes: dict[int, int] = field(default_factory=dict)  # batch size -> how many batches had it
    device_seconds: float = 0.0

    def record(self, size: int, seconds: float) -> None:
        self.requests += size
        self.batches += 1
        self.largest_batch = max(self.largest_batch, size)
        self.sizes[size] = self.sizes.get(size, 0) + 1
        self.device_seconds += seconds

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "batches": self.batches,
            "largest_batch": self.largest_batch,
            "batch_sizes": {str(k): v for k, v in sorted(self.sizes.items())},
            "device_seconds": round(self.device_seconds, 4),
        }


@dataclass
class _Pending(Generic[JobT, ResultT]):
    job: JobT
    future: "asyncio.Future[tuple[ResultT, int]]"


class Batcher(Generic[JobT, ResultT]):
    """Groups jobs submitted within `window_s` of the first (at most `max_batch`) into one call of `run`."""

    def __init__(self, run: Callable[[Sequence[JobT]], list[ResultT]], window_s: float = 0.01, max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._run = run
        self.window_s = window_s
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[_Pending[JobT, ResultT]] | None = None
        self._task: asyncio.Task[None] | None = None

    def _ensure_worker(self) -> asyncio.Queue[_Pending[JobT, ResultT]]:
        """The queue of the running loop, with its worker started (a new loop, as a test client makes, gets its own)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._queue is None or self._task is None or self._task.done():
            self._loop = loop
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._worker(self._queue), name="pipe-serve-batcher")
        return self._queue

    async def start(self) -> None:
        self._ensure_worker()

    async def submit(self, job: JobT) -> tuple[ResultT, int]:
        """The job's result and the size of the batch it ran in."""
        queue = self._ensure_worker()
        future: asyncio.Future[tuple[ResultT, int]] = asyncio.get_running_loop().create_future()
        await queue.put(_Pending(job, future))
        return await future

    async def close(self) -> None:
        if self._task is not None and self._loop is asyncio.get_running_loop():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._task = None

    async def _collect(self, queue: asyncio.Queue[_Pending[JobT, ResultT]]) -> list[_Pending[JobT, ResultT]]:
        loop = asyncio.get_running_loop()
        pending = [await queue.get()]
        deadline = loop.time() + self.window_s
        while len(pending) < self.max_batch:
            try:
                pending.append(queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                pending.append(await asyncio.wait_for(queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [p for p in pending if not p.future.done()]  # a client that went away cancelled its future

    async def _worker(self, queue: asyncio.Queue[_Pending[JobT, ResultT]]) -> None:
        while True:
            pending = await self._collect(queue)
            if not pending:
                continue
            started = time.perf_counter()
            try:
                results = await asyncio.to_thread(self._run, [p.job for p in pending])
            except Exception as exc:  # every job of the batch gets the error; the worker goes on
                log.exception("colouring a batch of %d failed", len(pending))
                for p in pending:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            seconds = time.perf_counter() - started
            self.stats.record(len(pending), seconds)
            log.info("coloured a batch of %d in %.0f ms", len(pending), seconds * 1000)
            for p, result in zip(pending, results):
                if not p.future.done():
                    p.future.set_result((result, len(pending)))
