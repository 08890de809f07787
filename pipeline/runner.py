"""The stage runner: plans work, skips what the ledger already holds, fans chunks out, records every row.

A stage (see `Stage`) says what its inputs are and how to turn one input into ledger rows; the runner
does everything else, identically for every stage:

- resume: inputs whose id is already in the stage's ledger are skipped;
- parallelism: chunks of inputs go to a local process pool (`workers`), a bounded number in flight;
- isolation: an exception inside one sample becomes a `failed` row carrying its message, and a worker
  that dies outright (a segfaulting decoder, the OOM killer) costs only the sample that killed it;
- durability: finished rows are appended to the ledger every few seconds, so a killed run keeps them,
  and outputs are written to the stage's temporary folder and renamed, so it leaves no half files;
- one global `finalize` step after all samples (for decisions that need every sample, such as
  duplicate detection), then the ledger is compacted into one file;
- a progress bar (count, rate, ETA) and a summary table.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import os
import shutil
import signal
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from manifests.layout import DatasetLayout
from manifests.ledger import Ledger, rows_by_status
from manifests.schema import STATUS_FAILED, LedgerSchema
from pipeline.console import console, make_progress
from pipeline.errors import PipeError

log = logging.getLogger(__name__)

REASON_EXCEPTION = "exception"
REASON_WORKER_CRASHED = "worker_crashed"


def default_workers() -> int:
    """CPUs this process may use (respects taskset / container CPU affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class WorkItem:
    """One input of a stage. `id` is the value of the ledger's id column for the rows it produces."""

    id: str
    payload: Any = None


@dataclass(frozen=True)
class StageContext:
    """What a worker needs besides the item: where the dataset is and where to stage temporary files."""

    layout: DatasetLayout
    tmp_dir: Path


class Stage(Protocol):
    """What a stage provides; it must be picklable (a frozen dataclass of its config is ideal)."""

    @property
    def ledger_schema(self) -> LedgerSchema: ...

    def plan(self) -> Iterable[WorkItem]:
        """Every input the stage should account for, in a deterministic order."""
        ...

    def process(self, item: WorkItem, context: StageContext) -> list[dict]:
        """Turn one input into its ledger rows, writing outputs atomically. Runs in a worker."""
        ...

    def failed_rows(self, item: WorkItem, reason: str, detail: str) -> list[dict]:
        """The rows recording that `item` failed for a reason the stage did not foresee."""
        ...

    def finalize(self, ledger: pa.Table, context: StageContext) -> list[dict]:
        """A global step after all samples; returns replacement rows (for whole ids), or []."""
        ...


@dataclass(frozen=True)
class RunnerConfig:
    # 0 runs samples in this process (no isolation; for debugging and profiling).
    workers: int = field(default_factory=default_workers)
    chunk_size: int = 8
    flush_rows: int = 1024
    flush_seconds: float = 5.0


@dataclass
class RunReport:
    stage: str
    planned: int
    skipped: int
    processed: int
    seconds: float
    new_counts: list[tuple[str, str, int]]
    total_counts: list[tuple[str, str, int]]

    @property
    def nothing_to_do(self) -> bool:
        return self.processed == 0


def run_stage(stage: Stage, root: Path, config: RunnerConfig = RunnerConfig(), label: str | None = None) -> RunReport:
    schema = stage.ledger_schema
    layout = DatasetLayout(root)
    context = StageContext(layout=layout, tmp_dir=layout.tmp(schema.stage))
    ledger = Ledger(root, schema)
    started = time.perf_counter()
    with stage_lock(layout, schema.stage):
        shutil.rmtree(context.tmp_dir, ignore_errors=True)  # leftovers of a killed run
        context.tmp_dir.mkdir(parents=True, exist_ok=True)
        done = ledger.ids()
        planned, pending = _pending_items(stage.plan(), done)
        new_rows = _process_all(stage, pending, context, ledger, config, label or schema.stage) if pending else 0
        changed = stage.finalize(ledger.read(), context)
        if changed:
            ledger.append(changed)
        ledger.compact()
        shutil.rmtree(context.tmp_dir, ignore_errors=True)
    return summarize_run(ledger, planned, {item.id for item in pending}, new_rows, started)


def summarize_run(ledger: Ledger, planned: int, new_ids: set[str], new_rows: int, started: float) -> RunReport:
    """The report of a run that processed the inputs `new_ids` of `planned`, writing `new_rows` rows."""
    schema = ledger.schema
    total = ledger.read()
    new_table = total.filter(pc.is_in(total[schema.id_column], pa.array(sorted(new_ids), pa.string())))
    return RunReport(
        stage=schema.stage,
        planned=planned,
        skipped=planned - len(new_ids),
        processed=len(new_ids),
        seconds=time.perf_counter() - started,
        new_counts=rows_by_status(new_table) if new_rows else [],
        total_counts=rows_by_status(total),
    )


def _pending_items(plan: Iterable[WorkItem], done: set[str]) -> tuple[int, list[WorkItem]]:
    seen: set[str] = set()
    pending = []
    for item in plan:
        if item.id in seen:
            continue
        seen.add(item.id)
        if item.id not in done:
            pending.append(item)
    return len(seen), pending


@contextmanager
def stage_lock(layout: DatasetLayout, stage: str) -> Iterator[None]:
    """One run of a stage per dataset at a time; the OS releases the lock if the run is killed."""
    path = layout.lock(stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipeError(f"another run of stage '{stage}' holds {path}; wait for it to finish") from None
        yield


# --------------------------------------------------------------------------- processing


def _run_chunk(stage: Stage, items: list[WorkItem], context: StageContext) -> list[dict]:
    rows: list[dict] = []
    for item in items:
        try:
            rows.extend(stage.process(item, context))
        except Exception as exc:  # one bad sample must never end the run
            log.debug("sample %s failed", item.id, exc_info=True)
            rows.extend(stage.failed_rows(item, REASON_EXCEPTION, describe_exception(exc)))
    return rows


def init_worker() -> None:
    # Ctrl-C is the parent's to handle: it flushes the ledger and stops the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import cv2

        cv2.setNumThreads(1)  # parallelism comes from processes; threads inside them only contend
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


class LedgerBuffer:
    """Collects rows and appends them to the ledger in batches (by count or by age)."""

    def __init__(self, ledger: Ledger, config: RunnerConfig) -> None:
        self.ledger, self.config = ledger, config
        self.rows: list[dict] = []
        self.last_flush = time.monotonic()

    def add(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.config.flush_rows or time.monotonic() - self.last_flush >= self.config.flush_seconds:
            self.flush()

    def flush(self) -> None:
        self.ledger.append(self.rows)
        self.rows = []
        self.last_flush = time.monotonic()


def _process_all(
    stage: Stage, items: list[WorkItem], context: StageContext, ledger: Ledger, config: RunnerConfig, label: str
) -> int:
    """Run every item; returns the number of ledger rows written."""
    buffer = LedgerBuffer(ledger, config)
    written = 0
    last_log = time.monotonic()
    with make_progress() as progress:
        task = progress.add_task(label, total=len(items))
        try:
            for done_items, rows in _execute(stage, items, context, config):
                buffer.add(rows)
                written += len(rows)
                progress.advance(task, done_items)
                if not console.is_terminal and time.monotonic() - last_log > 30:
                    # Unattended runs (cron, batch queues) get a plain line now and then instead of a bar.
                    state = progress.tasks[0]
                    log.info("%s: %d/%d done", label, int(state.completed), len(items))
                    last_log = time.monotonic()
        except KeyboardInterrupt:
            buffer.flush()
            raise PipeError(f"interrupted: {written} rows saved; run the same command again to resume") from None
        finally:
            buffer.flush()
    return written


def _execute(
    stage: Stage, items: list[WorkItem], context: StageContext, config: RunnerConfig
) -> Iterator[tuple[int, list[dict]]]:
    """Yield (number of items finished, their rows) as chunks complete, in completion order."""
    if config.workers <= 0:
        for start in range(0, len(items), config.chunk_size):
            chunk = items[start : start + config.chunk_size]
            yield len(chunk), _run_chunk(stage, chunk, context)
        return

    queue: deque[tuple[list[WorkItem], bool]] = deque(
        (items[start : start + config.chunk_size], False) for start in range(0, len(items), config.chunk_size)
    )
    max_in_flight = 2 * config.workers
    pool = new_process_pool(config.workers)
    in_flight: dict[Future, tuple[list[WorkItem], bool]] = {}
    try:
        while queue or in_flight:
            # A chunk suspected of killing its worker runs alone, so a second crash names the culprit.
            isolating = any(suspect for _, suspect in in_flight.values()) or (queue and queue[0][1])
            limit = 1 if isolating else max_in_flight
            while queue and len(in_flight) < limit:
                chunk, suspect = queue.popleft()
                in_flight[pool.submit(_run_chunk, stage, chunk, context)] = (chunk, suspect)
            finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            broken: list[tuple[list[WorkItem], bool]] = []
            for future in finished:
                chunk, suspect = in_flight.pop(future)
                try:
                    rows = future.result()
                except BrokenProcessPool:
                    broken.append((chunk, suspect))
                    continue
                yield len(chunk), rows
            if broken:
                # Every chunk in flight fails with the pool; collect them all, then retry item by item.
                for future in list(in_flight):
                    broken.append(in_flight.pop(future))
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_process_pool(config.workers)
                for chunk, suspect in reversed(broken):
                    if suspect:
                        item = chunk[0]
                        detail = "the worker process died while processing this sample (crash or out of memory)"
                        yield 1, stage.failed_rows(item, REASON_WORKER_CRASHED, detail)
                    else:
                        queue.extendleft(([item], True) for item in reversed(chunk))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def new_process_pool(workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent runs a progress thread, and forking a threaded process can deadlock.
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker
    )


def describe_exception(exc: BaseException) -> str:
    """`Type: message (file.py:line)`, the line being where it was raised: enough to file a bug."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    if frames:
        text += f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})"
    return text


def failed_row_defaults(schema: LedgerSchema, item: WorkItem, reason: str, detail: str) -> dict:
    """A minimal failed row: the id and the core columns; stages add what they know."""
    # The id goes last: for stages whose id column is `key` itself, it must win over the empty default.
    return {"key": "", "status": STATUS_FAILED, "reason": reason, "detail": detail, schema.id_column: item.id}
