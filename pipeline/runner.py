"""The per-sample stage runner: plan, skip what the ledger holds, run the rest, record every row.

A stage (see `Stage`) says what its inputs are and how to turn one input into ledger rows; the runner
does the rest inside a `StageSession` (lock, temporaries, ledger buffer, Ctrl-C, compaction, summary):

- inputs first: the plan is made before anything is written (a bad source leaves no dataset folder);
- resume: inputs whose id is already in the stage's ledger are skipped, and the stage's options must be
  the ones recorded with the ledger (`redo` forgets the ledger and the stage's outputs instead);
- parallelism: chunks of inputs go to the executor (this process, a local process pool, or Ray);
- isolation: the executor's (see pipeline.executors): only the sample that raises or kills its worker
  gets a `failed` row;
- one global `finalize` step after all samples (for decisions that need every sample, such as
  duplicate detection), then the ledger is compacted into one file;
- a progress bar (count, rate, ETA) and a summary.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc

from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import STATUS_FAILED, STATUS_OK, LedgerSchema
from pipeline.executors import default_workers, spec_of, start_executor
from pipeline.recorded_options import RecordedOptions
from pipeline.session import DEFAULT_SAVE_EVERY, RunReport, StageSession, make_dataset_folder
from pipeline.up_to_date import fingerprint, recorded_summary, remember


@dataclass(frozen=True)
class WorkItem:
    """One input of a stage. `id` is the value of the ledger's id column for the rows it produces."""

    id: str
    payload: Any = None


@dataclass(frozen=True)
class ColumnPlan:
    """A plan held as two Arrow columns (a crawl ledger's posts and their files, say), ids unique: only
    the inputs not yet in the ledger become `WorkItem`s, so a run with nothing new over a million
    inputs makes no Python object per input. `payload_of` turns a payload column value into the
    item's payload."""

    ids: pa.Array
    payloads: pa.Array
    payload_of: Callable[[Any], Any] = lambda value: value

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[WorkItem]:
        return self._items(self.ids, self.payloads)

    def not_in(self, done_ids: pa.Array) -> list[WorkItem]:
        """The items whose id is not among `done_ids`, in plan order."""
        new = pc.invert(pc.is_in(self.ids, value_set=done_ids))
        return list(self._items(self.ids.filter(new), self.payloads.filter(new)))

    def _items(self, ids: pa.Array, payloads: pa.Array) -> Iterator[WorkItem]:
        for item_id, payload in zip(ids.to_pylist(), payloads.to_pylist()):
            yield WorkItem(id=item_id, payload=self.payload_of(payload))


def pending_work(plan: Iterable[WorkItem], done_ids: pa.Array) -> tuple[int, list[WorkItem]]:
    """(inputs planned, those whose id is not among `done_ids`), the first item of each id, in order."""
    if isinstance(plan, ColumnPlan):
        return len(plan), plan.not_in(done_ids)
    unique = _unique(plan)
    done = set(done_ids.to_pylist())
    return len(unique), [item for item in unique if item.id not in done]


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

    def finalize(self, ledger: Ledger, context: StageContext) -> list[dict]:
        """A global step after all samples, given the stage's ledger (read what the step needs from
        it: a run with nothing new should not read every column); returns replacement rows (for whole
        ids), or []."""
        ...

    def recorded_options(self) -> RecordedOptions | None:
        """The options that decide the rows (a resume must use the same), or None."""
        ...

    def memo_inputs(self) -> dict[str, str | None] | None:
        """What the plan is made from, as digests read from ledger footers (pipeline.up_to_date), so a
        run whose inputs, ledger and options are those of the last finished run skips planning; None
        when the inputs cannot be told so (a folder of files)."""
        ...

    def reset(self, context: StageContext) -> None:
        """Remove the stage's outputs, for `redo` (the runner forgets the ledger itself)."""
        ...


@dataclass(frozen=True)
class RunnerConfig:
    # 0 runs samples in this process (no isolation; for debugging and profiling).
    workers: int = field(default_factory=default_workers)
    executor: str = "local"  # or "ray" (see pipeline.executors.ExecutorSpec)
    ray_address: str | None = None
    chunk_size: int = 8
    flush_seconds: float = DEFAULT_SAVE_EVERY
    # Start over: forget the ledger and the stage's outputs, whatever options they were made with.
    redo: bool = False


def run_stage(stage: Stage, root: Path, config: RunnerConfig = RunnerConfig(), label: str | None = None) -> RunReport:
    schema = stage.ledger_schema
    options = stage.recorded_options()
    option_values = options.values if options is not None else {}
    inputs = None if config.redo else stage.memo_inputs()
    recorded = recorded_summary(root, schema.stage, fingerprint(inputs, Ledger(root, schema), option_values) if inputs else None)
    plan = stage.plan() if recorded is None else []  # before anything is written: a bad source leaves no trace
    if not isinstance(plan, ColumnPlan):
        plan = _unique(plan)
    make_dataset_folder(root)
    with StageSession(root, schema.stage, schema, save_every=config.flush_seconds, options=options, redo=config.redo) as session:
        if recorded is not None:  # nothing the last finished run was made from has changed
            return session.recorded_report(recorded)
        context = StageContext(layout=session.layout, tmp_dir=session.tmp_dir)
        if config.redo:
            session.ledger.delete()
            stage.reset(context)
        planned, pending = pending_work(plan, session.ledger.id_array())
        if pending:
            _process_all(stage, pending, context, session, config, label or schema.stage)
        session.flush()
        changed = stage.finalize(session.ledger, context)
        if changed:
            session.ledger.append(changed)
    report = session.report(planned, {item.id for item in pending})
    remember(root, schema.stage, fingerprint(inputs, session.ledger, option_values) if inputs else None, asdict(report))
    return report


def _unique(plan: Iterable[WorkItem]) -> list[WorkItem]:
    """The plan's items in order, the first of each id."""
    first: dict[str, WorkItem] = {}
    for item in plan:
        first.setdefault(item.id, item)
    return list(first.values())


def _process_all(stage: Stage, items: list[WorkItem], context: StageContext, session: StageSession, config: RunnerConfig, label: str) -> None:
    process = functools.partial(stage.process, context=context)
    executor = start_executor(spec_of(config), process, stage.failed_rows)
    with executor, session.progress(label, total=len(items)) as bar:

        def record(finished) -> None:  # noqa: ANN001
            for unit in finished:
                session.record(unit.flat())
                bar.advance(len(unit.items))

        for start in range(0, len(items), config.chunk_size):
            executor.submit(items[start : start + config.chunk_size])
            record(executor.finished())
        record(executor.drain())


def failed_row_defaults(schema: LedgerSchema, item: WorkItem, reason: str, detail: str) -> dict:
    """A minimal failed row: the id and the core columns; stages add what they know."""
    # The id goes last: for stages whose id column is `key` itself, it must win over the empty default.
    return {"key": "", "status": STATUS_FAILED, "reason": reason, "detail": detail, schema.id_column: item.id}


def any_unsettled_ok_row(ledger: Ledger) -> bool:
    """Whether an ok row of a ledger with a `dedupe_settled` column (prepare's, import's) still waits for
    its duplicate decision: read from those two columns only."""
    flags = ledger.columns(["status", "dedupe_settled"])
    unsettled = pc.and_(pc.equal(flags["status"], STATUS_OK), pc.invert(pc.fill_null(flags["dedupe_settled"], False)))
    return bool(pc.any(unsettled).as_py())
