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

The session never creates the dataset folder: a stage that makes a new dataset (prepare, crawl) creates
it once its inputs are known to be valid, so a refused run leaves nothing behind. A stage whose results
depend on options gives them as `RecordedOptions`: they are recorded with its ledger (by default in
ROOT/.pipe/options/<name>.json) when the run first writes, and a later run that resumes with a changed
value is refused with one line naming the option, unless it is a `redo`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc

from manifests.atomic import write_bytes_atomic
from manifests.layout import DatasetLayout
from manifests.ledger import Ledger, rows_by_status
from manifests.schema import LedgerSchema
from pipeline import stages as _stage_registry
from pipeline.console import console, make_progress, plain_progress_line
from pipeline.errors import DiskFull, Interrupted, PipeError, disk_full_message, file_in_the_way, is_disk_full
from pipeline.recorded_options import DamagedRecord, RecordedOptions, option_changes, options_json, read_digested_json, shown

log = logging.getLogger(__name__)

DEFAULT_SAVE_EVERY = 5.0
# The command that writes each built-in ledger (kept for callers outside the session; the session itself,
# like every new caller, asks pipeline.stages.command_of_ledger, which also knows stages added later).
STAGE_COMMANDS = {entry.ledger: entry.command for entry in _stage_registry.ledger_stages()}
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
    # From the session's start to the end of its progress bar: the time the bar's rate is over (the
    # rest is global steps such as duplicate detection, and compaction).
    busy_seconds: float | None = None

    @property
    def nothing_to_do(self) -> bool:
        return self.processed == 0


class LedgerBuffer:
    """Collects rows and appends them to the ledger in batches (by count or by age)."""

    def __init__(self, ledger: Ledger, save_every: float, flush_rows: int = FLUSH_ROWS) -> None:
        self.ledger, self.save_every, self.flush_rows = ledger, save_every, flush_rows
        self.rows: list[dict] = []
        self.last_flush = time.monotonic()
        self.saved = 0  # rows this run has written to the ledger (what a full disk's message reports)

    def add(self, rows: list[dict]) -> None:
        self.rows.extend(rows)
        if len(self.rows) >= self.flush_rows or time.monotonic() - self.last_flush >= self.save_every:
            self.flush()

    def flush(self) -> None:
        # A failed append (a full disk) keeps its rows buffered: the session's exit tries them once more.
        self.ledger.append(self.rows)
        self.saved += len(self.rows)
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
            # A plain line (no log level, no padding to the console's width): a log is read line by line.
            console.print(plain_progress_line(self.progress.tasks[0]), soft_wrap=True, highlight=False, markup=False)
            self.last_log = time.monotonic()


def require_dataset(root: Path) -> None:
    """Refuse a dataset folder that does not exist (a typo), or is a file, before anything is written."""
    if not Path(root).is_dir():
        refuse_file_in_the_way(root)
        raise PipeError(f"dataset folder not found: {root}")


def refuse_file_in_the_way(folder: Path) -> None:
    """One line when a file stands where `folder` (or one of its parents) must be a folder."""
    in_the_way = file_in_the_way(folder)
    if in_the_way is not None:
        raise PipeError(f"{in_the_way} is a file, not a folder")


def make_dataset_folder(root: Path) -> None:
    """Create a new dataset's folder (a stage whose inputs were found valid); a file there is refused."""
    refuse_file_in_the_way(root)
    Path(root).mkdir(parents=True, exist_ok=True)


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
        options: RecordedOptions | None = None,
        redo: bool = False,
        upstream: tuple[str, ...] = (),
    ) -> None:
        self.root, self.name, self.schema = Path(root), name, schema
        self.layout = DatasetLayout(self.root)
        self.options, self.redo, self.upstream = options, redo, upstream
        self.options_path = (options.path or self.layout.options(name)) if options is not None else None
        self._options_saved = False
        self.tmp_dir = self.layout.tmp(name)
        self.ledger = Ledger(self.root, schema) if schema is not None else None
        self.buffer = LedgerBuffer(self.ledger, save_every) if self.ledger is not None else None
        self.resume_hint = resume_hint
        # What an interruption message says was kept; stages without ledger rows set their own.
        self.saved_note: str | None = None
        self.rows_written = 0
        self.started = time.monotonic()
        self.busy_until: float | None = None
        self._lock: IO[str] | None = None

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> StageSession:
        require_dataset(self.root)
        path = self.layout.lock(self.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w")  # noqa: SIM115 - held until the session ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise PipeError(f"another run of stage '{self.name}' holds {path}; wait for it to finish") from None
        try:
            if not self.redo:
                self.check_options()
                self.check_upstream()
        except PipeError:
            handle.close()
            raise
        self._lock = handle
        if self.redo:
            self.warn_downstream()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)  # leftovers of a killed run
        if self.ledger is not None:
            self.ledger.remove_stale_temporaries()
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.started = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        try:
            self._save(succeeded=exc_type is None)
        except OSError as second:
            if not is_disk_full(second):
                raise
            if not is_disk_full(exc):  # the run itself went well: saving its rows filled the disk
                exc = second
        finally:
            assert self._lock is not None
            self._lock.close()  # releases the flock
            self._lock = None
        if is_disk_full(exc):
            raise DiskFull(self.disk_full_message(exc)) from None
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            saved = self.saved_note if self.saved_note is not None else f"{self.rows_written} rows saved"
            raise Interrupted(f"interrupted: {saved}; {self.resume_hint}") from None

    def _save(self, succeeded: bool) -> None:
        """Write the buffered rows; after a successful run also compact the ledger and drop temporaries."""
        if self.buffer is not None:
            self.buffer.flush()
        if succeeded:
            self.save_options()
            if self.ledger is not None:
                self.ledger.compact()
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def disk_full_message(self, exc: OSError) -> str:
        """The one line a full disk ends the run with: the file, and the rows really saved."""
        saved = self.buffer.saved if self.buffer is not None else None
        fallback = self.ledger.parts_dir if self.ledger is not None else self.root
        return disk_full_message(exc, saved, fallback)

    # ----------------------------------------------------------------- recorded options
    def recorded_options(self) -> dict[str, Any]:
        """The options recorded by earlier runs ({} if none; a damaged record only a redo may replace)."""
        if self.options_path is None or not self.options_path.is_file():
            return {}
        try:
            return read_digested_json(self.options_path)
        except DamagedRecord:
            pass
        if self.redo:
            return {}
        raise PipeError(f"{self.options_path} is damaged: add --redo to start over")

    def check_options(self) -> None:
        """Refuse a resume whose options differ from the recorded ones, naming each difference."""
        if self.options is None:
            return
        changes = option_changes(self.recorded_options(), self.options.values)
        if changes:
            labels = self.options.labels
            named = "; ".join(f"{labels.get(key, key)} was {shown(old)}, now {shown(new)}" for key, old, new in changes)
            raise PipeError(
                f"{self.name}: this run's options differ from the ones recorded in {self.options_path}: {named}; "
                "use the recorded values to resume, or add --redo to start over"
            )

    def save_options(self) -> None:
        """Record this run's options (once, before its first results): what the next run is checked against.

        Also records which generation of the upstream stages' outputs this ledger is made from, and
        starts a new generation of this stage's own when it starts over (first run or --redo)."""
        if self._options_saved:
            return
        self._options_saved = True
        if self.options_path is not None:
            assert self.options is not None
            # A redo of some extraction methods keeps the other methods' record.
            text = options_json({**self.recorded_options(), **self.options.values})
            if not self.options_path.is_file() or self.options_path.read_text() != text:
                write_bytes_atomic(self.options_path, text.encode())
        generation = self.layout.generation(self.name)
        if self.schema is not None and (self.redo or not generation.is_file()):
            write_bytes_atomic(generation, (uuid.uuid4().hex + "\n").encode())
        if self.upstream:
            made_from = {stage: self._generation_of(stage) for stage in self.upstream}
            write_bytes_atomic(self.layout.upstream(self.name), options_json(made_from).encode())

    def warn_downstream(self) -> None:
        """A redo replaces outputs that later stages' ledgers were made from: say which must follow."""
        from pipeline.stages import ledger_stages

        order = [entry.ledger for entry in ledger_stages()]
        if self.name not in order:
            return
        later = [entry for entry in ledger_stages()[order.index(self.name) + 1 :] if Ledger(self.root, entry.ledger_schema()).exists()]
        if later:
            commands = ", ".join(f"pipe {entry.command}" for entry in later)
            later = [entry.ledger for entry in later]
            console.print(f"[yellow]warning:[/] {', '.join(f'{stage}.parquet' for stage in later)} were made from the outputs this --redo replaces: run {commands} with --redo after it", soft_wrap=True)

    def _generation_of(self, stage: str) -> str | None:
        path = self.layout.generation(stage)
        return path.read_text().strip() if path.is_file() else None

    def stale_upstream(self) -> list[str]:
        """The upstream stages whose outputs a `--redo` has replaced since this ledger was made from them."""
        path = self.layout.upstream(self.name)
        if not self.upstream or not path.is_file():
            return []
        try:
            made_from = json.loads(path.read_text())
        except ValueError:
            made_from = {}
        return [stage for stage in self.upstream if made_from.get(stage) and self._generation_of(stage) not in (None, made_from[stage])]

    def check_upstream(self) -> None:
        """Refuse to resume from a ledger made from upstream outputs that a `--redo` has since replaced."""
        stale = self.stale_upstream()
        if stale:
            from pipeline.stages import command_of_ledger

            redone = " and ".join(f"`pipe {command_of_ledger(stage) or stage} --redo`" for stage in stale)
            verb = "have" if len(stale) > 1 else "has"
            raise PipeError(
                f"{self.name}: this ledger was made from outputs that {redone} {verb} since replaced, so what it holds is stale; "
                "add --redo to make it again from the new ones"
            )

    # ----------------------------------------------------------------- during the run
    def record(self, rows: list[dict]) -> None:
        """Buffer ledger rows; they reach the ledger within `save_every` seconds."""
        assert self.buffer is not None, f"session {self.name} has no ledger"
        self.save_options()
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
            # `resumed_from`: the count done before this run, left out of the rate (a resumed training);
            # `since`: the session's start, so the bar's rate is the summary's (start-up included).
            task = progress.add_task(description, total=total, completed=completed, resumed_from=completed, since=self.started)
            yield ProgressTracker(progress, task, description, total)
        self.busy_until = time.monotonic()

    # ----------------------------------------------------------------- after the run
    def report(self, planned: int, new_ids: set[str]) -> RunReport:
        """The run's summary (from the ledger), also written to ROOT/.pipe/summaries/<name>.json."""
        assert self.ledger is not None, f"session {self.name} has no ledger"
        schema = self.ledger.schema
        # Counts only: not the wide columns of a million rows, and the ids only when some are new.
        total = self.ledger.columns([schema.id_column, "status", "reason"] if new_ids else ["status", "reason"])
        new_table = total.filter(pc.is_in(total[schema.id_column], pa.array(sorted(new_ids), pa.string()))) if new_ids else total.slice(0, 0)
        report = RunReport(
            stage=schema.stage,
            planned=planned,
            skipped=planned - len(new_ids),
            processed=len(new_ids),
            seconds=time.monotonic() - self.started,
            busy_seconds=self.busy_until - self.started if self.busy_until is not None else None,
            new_counts=rows_by_status(new_table) if self.rows_written else [],
            total_counts=rows_by_status(total),
        )
        return self._saved(report)

    def recorded_report(self, summary: dict) -> RunReport:
        """The report of a run that found, from the stage's memo (pipeline.up_to_date), that nothing is
        new: the counts of the finished run the memo recorded, no row read."""
        planned = int(summary["planned"])
        report = RunReport(
            stage=self.name, planned=planned, skipped=planned, processed=0, seconds=time.monotonic() - self.started,
            new_counts=[], total_counts=[tuple(entry) for entry in summary["total_counts"]],
        )
        return self._saved(report)

    def _saved(self, report: RunReport) -> RunReport:
        """`report`, once written as the run's summary (a full disk is the one-line DiskFull)."""
        try:
            self.write_summary(asdict(report))
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise DiskFull(self.disk_full_message(exc)) from None
        return report

    def write_summary(self, summary: dict) -> Path:
        """Write a machine-readable summary of this run (what a scheduled job reads back), with its digest
        (`read_digested_json` and `pipe verify` tell a damaged one from a good one)."""
        path = self.layout.summary(self.name)
        payload = {"name": self.name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **summary}
        write_bytes_atomic(path, options_json(payload).encode())
        return path
