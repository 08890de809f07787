"""Executors: where a stage's units of work run, and the one way a failing sample is isolated.

A stage hands an executor *units* (lists of items, e.g. a chunk of input files, a batch of line images
to encode, one sample to synthesize). The executor runs a per-item function over each unit, in this
process (`inline`, for debugging and profiling) or in a pool of spawned processes (`process`), and
hands back each finished unit with its results, one list per item, items in order.

Failure isolation is the same for every stage:
- an item whose function raises becomes the stage's failed result for that item (reason `exception`,
  the message and the line it came from), and the rest of its unit is unaffected;
- a worker that dies outright (a segfaulting decoder, the OOM killer) takes every unit in flight with
  it; those units are re-run one item at a time, alone, in a fresh pool, so only an item that kills a
  worker again is recorded failed (reason `worker_crashed`).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from manifests.reasons import EXCEPTION, WORKER_CRASHED

log = logging.getLogger(__name__)

CRASH_DETAIL = "the worker process died while processing this sample (crash or out of memory)"

EXECUTORS = ("inline", "process")

# The per-item function: one item in, its results out (ledger rows, outcomes). Must be picklable.
ItemFunction = Callable[[Any], list]
# What a failed item becomes: (item, reason, detail) -> its results. Runs in the calling process.
FailedFunction = Callable[[Any, str, str], list]


def default_workers() -> int:
    """CPUs this process may use (respects taskset / container CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def describe_exception(exc: BaseException) -> str:
    """`Type: message (file.py:line)`, the line being where it was raised: enough to file a bug."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


def quiet_worker() -> None:
    """Set up a worker process: Ctrl-C is the parent's to handle, and OpenCV runs single-threaded."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import cv2  # noqa: PLC0415 - only workers need the setting

    cv2.setNumThreads(1)  # parallelism comes from processes; threads inside them only contend


@dataclass(frozen=True)
class _Raised:
    """An item's function raised; `detail` describes the exception (it crosses a process boundary)."""

    detail: str


def run_items(function: ItemFunction, items: Sequence) -> list[list | _Raised]:
    """Run `function` on every item of a unit; an item that raises does not stop the others."""
    outcomes: list[list | _Raised] = []
    for item in items:
        try:
            outcomes.append(list(function(item)))
        except Exception as exc:  # one bad sample must never end the run
            log.debug("item failed", exc_info=True)
            outcomes.append(_Raised(describe_exception(exc)))
    return outcomes


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    quiet_worker()
    if initializer is not None:
        initializer(*initargs)


@dataclass
class _Unit:
    number: int
    items: list
    # Per item: its results once finished (None while pending).
    results: list = field(default_factory=list)
    # Set once a worker died with this unit in flight: its items then run one by one, alone.
    isolated: bool = False

    def __post_init__(self) -> None:
        self.results = [None] * len(self.items)

    @property
    def done(self) -> bool:
        return all(r is not None for r in self.results)


@dataclass(frozen=True)
class Finished:
    """A finished unit: its items and, per item, its results (the failed results for failed items)."""

    items: list
    results: list[list]

    def flat(self) -> list:
        return [r for per_item in self.results for r in per_item]


class LocalExecutor:
    """Runs units inline (`workers` 0) or in a spawned process pool of `workers` processes.

    `submit` queues a unit and returns once it is running (it waits while `window` units are in
    flight); `finished` returns the units finished so far, `drain` waits for all of them. With
    `ordered`, units are handed back in the order they were submitted.
    """

    def __init__(
        self,
        function: ItemFunction,
        failed: FailedFunction,
        workers: int,
        window: int | None = None,
        ordered: bool = False,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
    ) -> None:
        self.function, self.failed, self.workers, self.ordered = function, failed, workers, ordered
        self.initializer, self.initargs = initializer, initargs
        self.window = window or 2 * max(1, workers)
        self.pool: ProcessPoolExecutor | None = None
        self.units: dict[int, _Unit] = {}
        self.queue: deque[tuple[_Unit, int | None]] = deque()  # (unit, item index when isolated)
        self.in_flight: dict[Future, tuple[_Unit, int | None]] = {}
        self.next_number = 0
        self.next_out = 0
        if workers <= 0 and initializer is not None:
            initializer(*initargs)

    # ----------------------------------------------------------------- public
    def submit(self, items: Sequence) -> None:
        unit = _Unit(self.next_number, list(items))
        self.next_number += 1
        self.units[unit.number] = unit
        if not unit.items:
            return
        if self.workers <= 0:
            self._settle(unit, None, run_items(self.function, unit.items))
            return
        self.queue.append((unit, None))
        self._launch()
        while self.queue:
            self._wait_one()
            self._launch()

    def finished(self) -> list[Finished]:
        if self.in_flight:
            self._collect(block=False)
            self._launch()
        return self._take_finished()

    def drain(self) -> Iterator[Finished]:
        while self.in_flight or self.queue:
            self._wait_one()
            self._launch()
            yield from self._take_finished()
        yield from self._take_finished()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- internals
    def _new_pool(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs a progress thread, and forking a threaded process can deadlock.
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.initializer, self.initargs),
        )

    def _launch(self) -> None:
        if self.pool is None:
            self.pool = self._new_pool()
        while self.queue:
            isolating = any(index is not None for _, index in self.in_flight.values()) or self.queue[0][1] is not None
            # A suspect item runs alone, so that a second crash names it.
            if len(self.in_flight) >= (1 if isolating else self.window):
                return
            unit, index = self.queue.popleft()
            items = unit.items if index is None else [unit.items[index]]
            self.in_flight[self.pool.submit(run_items, self.function, items)] = (unit, index)

    def _wait_one(self) -> None:
        if self.in_flight:
            self._collect(block=True)

    def _collect(self, block: bool) -> None:
        done, _ = wait(self.in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        broken: list[tuple[_Unit, int | None]] = []
        for future in done:
            unit, index = self.in_flight.pop(future)
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                broken.append((unit, index))
                continue
            self._settle(unit, index, outcomes)
        if broken:
            self._recover(broken)

    def _recover(self, broken: list[tuple[_Unit, int | None]]) -> None:
        """A worker died: every unit in flight failed with the pool; re-run their items one by one."""
        broken += list(self.in_flight.values())
        self.in_flight.clear()
        assert self.pool is not None
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = self._new_pool()
        retry: list[tuple[_Unit, int]] = []
        for unit, index in broken:
            if index is not None:  # this item ran alone and killed its worker again: it is the culprit
                unit.results[index] = self.failed(unit.items[index], WORKER_CRASHED, CRASH_DETAIL)
                continue
            unit.isolated = True
            retry += [(unit, i) for i, result in enumerate(unit.results) if result is None]
        self.queue.extendleft(reversed(sorted(retry, key=lambda pair: (pair[0].number, pair[1]))))

    def _settle(self, unit: _Unit, index: int | None, outcomes: list[list | _Raised]) -> None:
        indices = range(len(unit.items)) if index is None else [index]
        for i, outcome in zip(indices, outcomes):
            if isinstance(outcome, _Raised):
                unit.results[i] = self.failed(unit.items[i], EXCEPTION, outcome.detail)
            else:
                unit.results[i] = outcome

    def _take_finished(self) -> list[Finished]:
        ready = []
        if self.ordered:
            while self.next_out in self.units and self.units[self.next_out].done:
                ready.append(self.units.pop(self.next_out))
                self.next_out += 1
        else:
            ready = [unit for unit in self.units.values() if unit.done]
            for unit in ready:
                del self.units[unit.number]
        return [Finished(unit.items, unit.results) for unit in ready]


def make_executor(name: str, function: ItemFunction, failed: FailedFunction, workers: int, **options: Any) -> LocalExecutor:
    """The executor called `name`: `inline` (this process) or `process` (a local pool of `workers`)."""
    if name == "inline":
        return LocalExecutor(function, failed, 0, **options)
    if name == "process":
        return LocalExecutor(function, failed, max(1, workers), **options)
    raise ValueError(f"unknown executor {name!r}; choose from {', '.join(EXECUTORS)}")


def executor_name(workers: int) -> str:
    """`--workers 0` runs in this process; any other count, a local process pool."""
    return "inline" if workers <= 0 else "process"
