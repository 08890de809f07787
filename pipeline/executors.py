"""Executors: where a stage's units of work run, and the one way a failing sample is isolated.

A stage hands an executor *units* (lists of items, e.g. a chunk of input files, a batch of line images
to encode, one sample to synthesize). The executor runs a per-item function (or a `BatchFunction` over
the whole unit) and hands back each finished unit with its results, one list per item, items in order.

Executors are named: `local` runs units in this process (`--workers 0`, for debugging and profiling)
or in a pool of spawned processes; `ray` runs them as tasks on a Ray cluster (pipeline.ray_executor).

Failure isolation is the same for every stage and executor:
- an item whose function raises becomes the stage's failed result for that item (reason `exception`,
  the message and the line it came from), and the rest of its unit is unaffected;
- a full disk is no sample's fault: an OSError ENOSPC/EDQUOT is re-raised, not recorded, and ends the
  run (the stage session turns it into one line; the unfinished items are done by the rerun);
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
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from manifests.reasons import EXCEPTION, WORKER_CRASHED
from pipeline.errors import is_disk_full
from pipeline.worker_lifetime import end_with_parent

log = logging.getLogger(__name__)

CRASH_DETAIL = "the worker process died while processing this sample (crash or out of memory)"

EXECUTORS = ("local", "ray")

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


@dataclass(frozen=True)
class BatchFunction:
    """Marks a function that takes a whole unit (a list of items) and returns one result list per item,
    for work that batches on a device. If a batch raises, its items are run again one at a time, so
    only the item that raises alone is recorded failed."""

    function: Callable[[list], list[list]]


def run_items(function: ItemFunction | BatchFunction, items: Sequence) -> list[list | _Raised]:
    """Run `function` on every item of a unit; an item that raises does not stop the others."""
    if isinstance(function, BatchFunction):
        return _run_batch(function.function, list(items))
    outcomes: list[list | _Raised] = []
    for item in items:
        try:
            outcomes.append(list(function(item)))
        except Exception as exc:  # one bad sample must never end the run
            if is_disk_full(exc):
                raise
            log.debug("item failed", exc_info=True)
            outcomes.append(_Raised(describe_exception(exc)))
    return outcomes


def _run_batch(function: Callable[[list], list[list]], items: list) -> list[list | _Raised]:
    try:
        return [list(results) for results in function(items)]
    except Exception as exc:
        if is_disk_full(exc):
            raise
        if len(items) == 1:
            log.debug("item failed", exc_info=True)
            return [_Raised(describe_exception(exc))]
        log.debug("batch of %d failed; running its items one by one", len(items), exc_info=True)
        return [outcome for item in items for outcome in _run_batch(function, [item])]


@contextmanager
def children_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes inside this: they are born with SIGINT blocked.

    A terminal's Ctrl-C reaches the whole process group, and a spawned worker spends its first
    seconds importing this program (torch...) before `quiet_worker` can ignore SIGINT: interrupted
    there, it printed its own KeyboardInterrupt traceback, and the DataLoader's teardown another. The
    signal mask is inherited across fork and exec, so the workers never see the signal; this process
    gets its Ctrl-C as soon as the block is lifted. (CPython starts its resource tracker the same way.)
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _start_worker(initializer: Callable[..., None] | None, initargs: tuple, parent_pid: int | None = None) -> None:
    if parent_pid is not None:
        end_with_parent(parent_pid)
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


class Crashed(Exception):
    """A backend's word that the worker running a unit died (the unit's results are lost)."""


# `alone`: the unit is one item re-run after a crash (a backend may then skip its own retries).


class Backend:
    """Where units run. `start` launches one unit's `run_items` and returns a handle; `wait` returns
    the handles that finished; `result` gives a finished unit's outcomes or raises `Crashed`; after a
    crash, `restart` is called and returns whether every other unit in flight was lost with it."""

    def start(self, items: list, alone: bool = False) -> Any: ...

    def wait(self, handles: list, block: bool) -> list: ...

    def result(self, handle: Any) -> list[list | _Raised]: ...

    def restart(self) -> bool: ...

    def close(self) -> None: ...


class ProcessPoolBackend(Backend):
    """A local pool of spawned processes (spawn, not fork: the parent runs a progress thread, and
    forking a threaded process can deadlock). A dead worker breaks the whole pool."""

    def __init__(self, function: ItemFunction | BatchFunction, workers: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
        self.function, self.workers, self.initializer, self.initargs = function, workers, initializer, initargs
        self.pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(self.initializer, self.initargs, os.getpid()),
        )

    def start(self, items: list, alone: bool = False) -> Future:
        with children_ignore_ctrl_c():  # the pool starts its worker processes on submits
            return self.pool.submit(run_items, self.function, items)

    def wait(self, handles: list, block: bool) -> list:
        done, _ = wait(handles, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Future) -> list[list | _Raised]:
        try:
            return handle.result()
        except BrokenProcessPool:
            raise Crashed from None

    def restart(self) -> bool:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = self._new_pool()
        return True

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class Executor:
    """Runs units of items through a backend (or inline, without one), isolating failures.

    `submit` queues a unit and returns once it is running (it waits while `window` units are in
    flight); `finished` returns the units finished so far, `drain` waits for all of them. With
    `ordered`, units are handed back in the order they were submitted.
    """

    def __init__(
        self,
        function: ItemFunction | BatchFunction,
        failed: FailedFunction,
        backend: Backend | None,
        window: int = 2,
        ordered: bool = False,
    ) -> None:
        self.function, self.failed, self.backend, self.ordered = function, failed, backend, ordered
        self.window = max(1, window)
        self.units: dict[int, _Unit] = {}
        self.queue: deque[tuple[_Unit, int | None]] = deque()  # (unit, item index when isolated)
        self.in_flight: dict[Any, tuple[_Unit, int | None]] = {}
        self.next_number = 0
        self.next_out = 0

    # ----------------------------------------------------------------- public
    def submit(self, items: Sequence) -> None:
        unit = _Unit(self.next_number, list(items))
        self.next_number += 1
        self.units[unit.number] = unit
        if not unit.items:
            return
        if self.backend is None:
            self._settle(unit, None, run_items(self.function, unit.items))
            return
        self.queue.append((unit, None))
        self._launch()
        while self.queue:
            self._collect(block=True)
            self._launch()

    def finished(self) -> list[Finished]:
        if self.in_flight:
            self._collect(block=False)
            self._launch()
        return self._take_finished()

    def drain(self) -> Iterator[Finished]:
        while self.in_flight or self.queue:
            self._collect(block=True)
            self._launch()
            yield from self._take_finished()
        yield from self._take_finished()

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- internals
    def _launch(self) -> None:
        assert self.backend is not None
        while self.queue:
            isolating = any(index is not None for _, index in self.in_flight.values()) or self.queue[0][1] is not None
            # A suspect item runs alone, so that a second crash names it.
            if len(self.in_flight) >= (1 if isolating else self.window):
                return
            unit, index = self.queue.popleft()
            items = unit.items if index is None else [unit.items[index]]
            self.in_flight[self.backend.start(items, alone=index is not None)] = (unit, index)

    def _collect(self, block: bool) -> None:
        assert self.backend is not None
        if not self.in_flight:
            return
        broken: list[tuple[_Unit, int | None]] = []
        for handle in self.backend.wait(list(self.in_flight), block):
            unit, index = self.in_flight.pop(handle)
            try:
                outcomes = self.backend.result(handle)
            except Crashed:
                broken.append((unit, index))
                continue
            self._settle(unit, index, outcomes)
        if broken:
            self._recover(broken)

    def _recover(self, broken: list[tuple[_Unit, int | None]]) -> None:
        """A worker died: re-run the items of the units it took with it one by one, alone."""
        assert self.backend is not None
        if self.backend.restart():  # every unit in flight went down with the pool
            broken += list(self.in_flight.values())
            self.in_flight.clear()
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


@dataclass(frozen=True)
class ExecutorSpec:
    """Which executor a stage runs on: `local` (inline when `workers` is 0, else a process pool of
    `workers`) or `ray` (tasks on a Ray cluster: `ray_address` None starts a local runtime with
    `workers` CPUs, `auto` joins a running cluster)."""

    name: str = "local"
    workers: int = field(default_factory=default_workers)
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if self.name not in EXECUTORS:
            raise ValueError(f"unknown executor {self.name!r}; choose from {', '.join(EXECUTORS)}")


class ExecutorChoice(Protocol):
    """A stage config's executor fields (RunnerConfig, ExtractConfig, ShardConfig)."""

    executor: str
    workers: int
    ray_address: str | None


def spec_of(config: ExecutorChoice) -> ExecutorSpec:
    """The executor a stage config asks for."""
    return ExecutorSpec(config.executor, config.workers, config.ray_address)


def start_executor(
    spec: ExecutorSpec,
    function: ItemFunction | BatchFunction,
    failed: FailedFunction,
    window: int | None = None,
    ordered: bool = False,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    num_gpus: float = 0,
    stateful: bool = False,
) -> Executor:
    """The executor `spec` names, running `function` over units of items. `stateful`: on Ray, units
    go to long-lived actors that keep what the function loads (networks) between units."""
    window = window or 2 * max(1, spec.workers)
    if spec.name == "ray":
        from pipeline.ray_executor import RayBackend  # noqa: PLC0415 - Ray is an optional extra

        return Executor(function, failed, RayBackend(function, spec, initializer, initargs, num_gpus, actors=stateful), window, ordered)
    if spec.workers <= 0:
        if initializer is not None:
            initializer(*initargs)
        return Executor(function, failed, None, window, ordered)
    return Executor(function, failed, ProcessPoolBackend(function, spec.workers, initializer, initargs), window, ordered)


def local(workers: int) -> ExecutorSpec:
    """The local executor with `workers` processes (0: in this process)."""
    return ExecutorSpec("local", workers)
