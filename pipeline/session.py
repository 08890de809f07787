"""The stage session: the one lifecycle every stage (crawl, prepare, extract, shard, train, eval) runs in.

    with StageSession(root, "prepared", schema=PREPARED, save_every=5) as session:
        with session.progress("prepare", total=len(items)) as bar:
            ...  session.record(rows); bar.advance(len(rows))
    report = session.report(planned, new_ids)

Entering takes the stage's lock (one run per stage and dataset; the OS releases it if the run is
killed) and wipes the temporaries a killed run left. `record` buffers ledger rows and appends them
as a ledger part every `save_every` seconds, so a killed run loses at most that much. Leaving flushes
the buffer; on success it compacts the ledger into one file and removes the temporaries; on Ctrl-C it
raises one `PipeError` line saying what was saved and how to resume. `report` summarizes the run and
writes it, machine-readable, to ROOT/.pipe/summaries/<name>.json.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc

from manifests.atomic import write_bytes_atomic
from manifests.layout import DatasetLayout
from manifests.ledger import Ledger, rows_by_status
from manifests.schema import LedgerSchema
from pipeline.console import console, make_progress
from pipeline.errors import PipeError

log = logging.getLogger(__name__)

DEFAULT_SAVE_EVERY = 5.0
FLUSH_ROWS = 1024
# Unattended runs (cron, batch queues) get a plain progress line this often instead of a bar.
PLAIN_PROGRESS_SECONDS = 30.0


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


class LedgerBuffer:
    """Collects rows and appends them to the ledger in batches (by count or by age)."""

    def __init__(self, ledger: Ledger, save_every: float, flush_rows: int = FLUSH_ROWS) -> None:
        self.ledger, self.save_every, self.flush_rows = ledger, save_every, flush_rows
        self.rows: list[dict] = []
        self.last_flush = time.monotonic()

    def add(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.flush_rows or time.monotonic() - self.last_flush >= self.save_every:
            self.flush()

    def flush(self) -> None:
        self.ledger.append(self.rows)
        self.rows = []
        self.last_flush = time.monotonic()


class ProgressTracker:
    """One progress bar: count, rate, ETA on a terminal; a plain line every 30 s in logs."""

    def __init__(self, progress, task, description: str, total: int | None) -> None:  # noqa: ANN001
        self.progress, self.task, self.description, self.total = progress, task, description, total
        self.last_log = time.monotonic()

    def advance(self, count: int = 1, description: str | None = None) -> None:
        self.progress.update(self.task, advance=count, **({"description": description} if description else {}))
        if not console.is_terminal and time.monotonic() - self.last_log > PLAIN_PROGRESS_SECONDS:
            done = int(self.progress.tasks[0].completed)
            log.warning("%s: %d%s done", description or self.description, done, f"/{self.total}" if self.total is not None else "")
            self.last_log = time.monotonic()


class StageSession:
    """Lock, temporaries, ledger buffer, interruption, compaction and summary of one stage run.

    `name` names the lock, the temporaries folder and the summary (the ledger's stage name for stages
    with a ledger, e.g. `train-<run>` for a training run). `schema` is the stage's ledger, if any.
    """

    def __init__(
        self,
        root: Path,
        name: str,
        schema: LedgerSchema | None = None,
        save_every: float = DEFAULT_SAVE_EVERY,
        resume_hint: str = "run the same command again to resume",
    ) -> None:
        self.root, self.name, self.schema = Path(root), name, schema
        self.layout = DatasetLayout(self.root)
        self.tmp_dir = self.layout.tmp(name)
        self.ledger = Ledger(self.root, schema) if schema is not None else None
        self.buffer = LedgerBuffer(self.ledger, save_every) if self.ledger is not None else None
        self.resume_hint = resume_hint
        # What an interruption message says was kept; stages without ledger rows set their own.
        self.saved_note: str | None = None
        self.rows_written = 0
        self.started = time.perf_counter()
        self._lock: IO[str] | None = None

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> StageSession:
        path = self.layout.lock(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w")  # noqa: SIM115 - held until the session ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise PipeError(f"another run of stage '{self.name}' holds {path}; wait for it to finish") from None
        self._lock = handle
        shutil.rmtree(self.tmp_dir, ignore_errors=True)  # leftovers of a killed run
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        try:
            if self.buffer is not None:
                self.buffer.flush()
            if exc_type is None:
                if self.ledger is not None:
                    self.ledger.compact()
                shutil.rmtree(self.tmp_dir, ignore_errors=True)
        finally:
            assert self._lock is not None
            self._lock.close()  # releases the flock
            self._lock = None
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            saved = self.saved_note if self.saved_note is not None else f"{self.rows_written} rows saved"
            raise PipeError(f"interrupted: {saved}; {self.resume_hint}") from None

    # ----------------------------------------------------------------- during the run
    def record(self, rows: list[dict]) -> None:
        """Buffer ledger rows; they reach the ledger within `save_every` seconds."""
        assert self.buffer is not None, f"session {self.name} has no ledger"
        self.buffer.add(rows)
        self.rows_written += len(rows)

    def flush(self) -> None:
        """Write buffered rows now (before a step that reads the whole ledger)."""
        if self.buffer is not None:
            self.buffer.flush()

    @contextmanager
    def progress(self, description: str, total: int | None, completed: int = 0, enabled: bool = True) -> Iterator[ProgressTracker]:
        progress = make_progress()
        progress.disable = not enabled
        with progress:
            task = progress.add_task(description, total=total, completed=completed)
            yield ProgressTracker(progress, task, description, total)

    # ----------------------------------------------------------------- after the run
    def report(self, planned: int, new_ids: set[str]) -> RunReport:
        """The run's summary (from the ledger), also written to ROOT/.pipe/summaries/<name>.json."""
        assert self.ledger is not None, f"session {self.name} has no ledger"
        schema = self.ledger.schema
        total = self.ledger.read()
        new_table = total.filter(pc.is_in(total[schema.id_column], pa.array(sorted(new_ids), pa.string())))
        report = RunReport(
            stage=schema.stage,
            planned=planned,
            skipped=planned - len(new_ids),
            processed=len(new_ids),
            seconds=time.perf_counter() - self.started,
            new_counts=rows_by_status(new_table) if self.rows_written else [],
            total_counts=rows_by_status(total),
        )
        self.write_summary(asdict(report))
        return report

    def write_summary(self, summary: dict) -> Path:
        """Write a machine-readable summary of this run (what a scheduled job reads back)."""
        path = self.layout.summary(self.name)
        payload = {"name": self.name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **summary}
        write_bytes_atomic(path, (json.dumps(payload, indent=1, sort_keys=True, default=str) + "\n").encode())
        return path
