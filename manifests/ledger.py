"""The stage ledger: one Parquet table per stage, one or more rows per input, never silently short.

A finished ledger is a single file, `<root>/<stage>.parquet`. While a stage runs, it appends rows as
small part files under `<root>/.pipe/parts/<stage>/` (each written atomically), so a killed run keeps
everything it finished; `compact()` folds the parts into the main file (again atomically) and only
then removes them. Readers always see main file + parts merged, with newer writes for an input id
replacing older ones, so a crash between any two steps never loses or duplicates a row.

Folding streams: the main file is kept sorted by (id, key), so it is read a record batch at a time and
merged with the parts' rows (sorted the same way) into the new file, one row group at a time. A long
run (a million-post crawl or import) also folds as it goes, whenever its parts hold FOLD_ROWS rows or a
quarter of the main file, whichever is more (at most FOLD_MAX_ROWS): memory stays bounded by the parts
folded at once, and the main file is rewritten a bounded number of times per row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifests.atomic import TMP_SUFFIX, atomic_target
from manifests.checksummed import CheckedTable, read_checksummed_handle, verify_checksummed_file, write_checksummed_parquet
from manifests.layout import DatasetLayout
from manifests.schema import SCHEMA_VERSION, LedgerSchema
from manifests.errors import LedgerError  # noqa: F401 - raised here, and imported from here by callers

_PART_PREFIX = "part-"
_SEQ = "__seq"
FOLD_ROWS = 16_384  # a run folds its parts into the main file once they hold this many rows...
FOLD_MAX_ROWS = 262_144  # ...or a quarter of the main file, but never waits for more than this
MERGE_BATCH_ROWS = 65_536  # rows of the main file merged at a time while folding (read a row group at a time)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# A folded main file says it holds its rows in (id, key) order, so reading it alone needs no sort.
SORTED_KEY, SORTED_VALUE = b"pipe.sorted_by", b"id,key"

log = logging.getLogger(__name__)


class Ledger:
    def __init__(self, root: Path, schema: LedgerSchema) -> None:
        self.schema = schema
        self.layout = DatasetLayout(root)
        self.path = self.layout.ledger(schema.stage)
        self.parts_dir = self.layout.ledger_parts(schema.stage)
        self._last_seq: int | None = None  # number of the last part this object wrote or saw
        self._pending_rows: int | None = None  # rows in the pending parts, counted on this object's first append
        self._main_rows: int | None = None
        self._folding_failed = False  # a fold during the run found the disk full: the final compact() tries again

    # ----------------------------------------------------------------- reading
    def exists(self) -> bool:
        return self.path.exists() or bool(self.pending_parts())

    def pending_parts(self) -> list[Path]:
        """Part files of a run not yet compacted, oldest first."""
        if not self.parts_dir.is_dir():
            return []
        return sorted(p for p in self.parts_dir.iterdir() if p.name.startswith(_PART_PREFIX) and p.suffix == ".parquet")

    def remove_stale_temporaries(self) -> int:
        """Delete what a killed write left: `<stage>.parquet.<pid>.tmp` beside the ledger and temporary
        parts. Call only while holding the stage's lock (no write of this ledger is under way)."""
        stale = list(self.path.parent.glob(f"{self.path.name}.*{TMP_SUFFIX}"))
        if self.parts_dir.is_dir():
            stale += list(self.parts_dir.glob(f"*{TMP_SUFFIX}"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def read(self, columns: Sequence[str] | None = None) -> pa.Table:
        """Main file and pending parts merged: for each input id, the rows of its newest write.

        `columns`: read only these (the id and key columns are always read: the merge needs them), so a
        caller that counts statuses does not hold every tag string of a million-post crawl."""
        wanted = None if columns is None else list(dict.fromkeys([self.schema.id_column, "key", *columns]))
        tables = []
        if self.path.exists():
            tables.append(read_ledger_file(self.path, self.schema, wanted))
        tables.extend(read_ledger_file(part, self.schema, wanted) for part in self.pending_parts())
        if not tables:
            empty = self.schema.arrow.empty_table()
            return empty if wanted is None else empty.select(wanted)
        return _newest_rows_per_id(tables, self.schema.id_column)

    def columns(self, names: Sequence[str]) -> pa.Table:
        """Just the columns `names` of the newest rows, in no particular order: for counting. The id
        and key columns are read only where parts wait to be merged with the main file (the main
        file alone already holds one newest write per id)."""
        names = list(names)
        if self.pending_parts() or not self.path.exists():
            return self.read(columns=names).select(names)
        return read_ledger_file(self.path, self.schema, names)

    def ids(self) -> set[str]:
        return set(self.id_array().to_pylist())

    def id_array(self) -> pa.Array:
        """The input ids the ledger holds (main file and parts; an id with several rows repeats) as one
        Arrow array: only the id column is read, and "which of these inputs are new" is one
        `pc.is_in`, with no Python string per row."""
        column = self.schema.id_column
        files = ([self.path] if self.path.exists() else []) + self.pending_parts()
        chunks = [chunk for path in files for chunk in read_ledger_file(path, self.schema, [column])[column].chunks]
        return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())

    # ----------------------------------------------------------------- writing
    def append(self, rows: Sequence[Mapping]) -> None:
        """Write `rows` as a new part. A later append for the same id replaces these rows on read.
        Once the pending parts are large (see the module's notes), they are folded into the main file."""
        if not rows:
            return
        table = pa.Table.from_pylist(list(rows), schema=self.schema.arrow)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._write(table, self._next_part())
        self._pending_rows = (self._pending_rows or 0) + table.num_rows
        if not self._folding_failed and self._pending_rows >= self._fold_threshold():
            self._fold_while_running()

    def _fold_threshold(self) -> int:
        if self._main_rows is None:
            self._main_rows = _row_count(self.path) if self.path.exists() else 0
        return min(FOLD_MAX_ROWS, max(FOLD_ROWS, self._main_rows // 4))

    def _fold_while_running(self) -> None:
        """compact() in the middle of a run. The rows are already safe in their parts, so a disk too
        full for the new main file only postpones folding to the end of the run (which says so)."""
        try:
            self.compact()
        except OSError as exc:
            if exc.errno not in _NO_SPACE:
                raise
            self._folding_failed = True
            log.warning("the disk is too full to fold %s's parts into %s; they stay as parts", self.schema.stage, self.path)

    def _next_part(self) -> Path:
        """The next part's path. The folder is listed once per Ledger, not on every append (a long crawl
        reaches tens of thousands of parts); a part that appeared meanwhile (another Ledger object of the
        same stage) is seen by its name being taken, and the folder is listed again."""
        seq = self._last_seq
        candidate = None if seq is None else self.parts_dir / f"{_PART_PREFIX}{seq + 1:08d}.parquet"
        if candidate is None or candidate.exists():
            existing = self.pending_parts()
            if self._pending_rows is None:  # a killed run's parts count toward the next fold
                self._pending_rows = sum(_row_count(part) for part in existing)
            seq = int(existing[-1].stem[len(_PART_PREFIX) :]) if existing else 0
            candidate = self.parts_dir / f"{_PART_PREFIX}{seq + 1:08d}.parquet"
        self._last_seq = seq + 1
        return candidate

    def delete(self) -> None:
        """Forget every row: the main file and any pending parts (a stage started over)."""
        for path in [self.path, *self.pending_parts()]:
            path.unlink(missing_ok=True)

    def compact(self) -> bool:
        """Fold pending parts into the main file; returns False when there was nothing to fold."""
        parts = self.pending_parts()
        if not parts:
            return False
        id_column = self.schema.id_column
        pending = _newest_rows_per_id([read_ledger_file(part, self.schema) for part in parts], id_column)
        merged = _merge_sorted(self._main_batches(), pending, id_column) if self.path.exists() else iter([pending])
        in_order = self.schema.arrow.with_metadata({**(self.schema.arrow.metadata or {}), SORTED_KEY: SORTED_VALUE})
        with _naming(self.path), atomic_target(self.path, durable=True) as tmp:
            self._main_rows = write_checksummed_parquet(tmp, in_order, merged)
        for part in parts:  # the main file now holds their rows; a crash here only leaves duplicates read() merges
            part.unlink(missing_ok=True)
        self._pending_rows = 0
        return True

    def _main_batches(self) -> Iterator[pa.Table]:
        """The main file's rows in its (id, key) order, a row group at a time in batches of at most
        MERGE_BATCH_ROWS, its digest checked first."""
        stage = self.schema.stage
        try:
            verify_checksummed_file(self.path)
            reader = pq.ParquetFile(self.path, page_checksum_verification=True)
        except Exception as exc:  # noqa: BLE001 - a digest mismatch, or one of pyarrow's several errors for damaged files
            raise _damaged(self.path, stage, exc) from exc
        _check_version(reader.schema_arrow, self.path)
        names = set(reader.schema_arrow.names)
        columns = [name for name in self.schema.arrow.names if name in names]
        try:
            for group in range(reader.metadata.num_row_groups):  # one at a time: iter_batches reads ahead
                table = reader.read_row_group(group, columns=columns)
                for start in range(0, table.num_rows, MERGE_BATCH_ROWS):
                    yield _conform(table.slice(start, MERGE_BATCH_ROWS), self.schema.arrow, self.path)
        except (OSError, pa.ArrowException) as exc:  # a page whose checksum fails as it is read
            raise _damaged(self.path, stage, exc) from exc

    def _write(self, table: pa.Table, final: Path) -> None:
        with _naming(final), atomic_target(final, durable=True) as tmp:
            write_checksummed_parquet(tmp, self.schema.arrow, [table])


def _merge_sorted(main: Iterator[pa.Table], pending: pa.Table, id_column: str) -> Iterator[pa.Table]:
    """Main-file batches (sorted by (id, key)) with `pending`'s rows (sorted the same way) merged in;
    an id `pending` has replaces all of the main file's rows for it. Yields tables in (id, key) order."""
    pending_ids = pending.column(id_column)
    ids_sorted = pending_ids.to_numpy(zero_copy_only=False).astype(str) if pending.num_rows else np.array([], dtype=str)
    taken = 0
    for batch in main:
        if batch.num_rows == 0:
            continue
        replaced = pc.is_in(batch.column(id_column), value_set=pending_ids)
        if pc.any(replaced).as_py():  # most batches have none: no copy for them
            batch = batch.filter(pc.invert(replaced))
            if batch.num_rows == 0:
                continue
        last_id = batch.column(id_column)[-1].as_py()
        upto = int(np.searchsorted(ids_sorted, last_id, side="right"))
        if upto > taken:
            batch = pa.concat_tables([batch, pending.slice(taken, upto - taken)])
            batch = batch.sort_by([(id_column, "ascending"), ("key", "ascending")])
            taken = upto
        yield batch
    if taken < pending.num_rows:
        yield pending.slice(taken)


@contextmanager
def _naming(final: Path) -> Iterator[None]:
    """An OSError from a write names no file (a full disk's ENOSPC from write()): name the ledger file."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(final)) from exc
        raise


def _row_count(path: Path) -> int:
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, pa.ArrowException):
        return 0  # a damaged file: the next read names it


def _damaged(path: Path, stage: str, exc: Exception) -> LedgerError:
    why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return LedgerError(f"cannot read ledger {path}: it is damaged ({why}); {recovery_hint(stage)}")


def _check_version(schema: pa.Schema, path: Path) -> None:
    version = int((schema.metadata or {}).get(b"pipe.schema_version", b"1"))
    if version > SCHEMA_VERSION:
        raise LedgerError(f"ledger {path} has schema version {version}; this pipe reads up to {SCHEMA_VERSION}: upgrade pipe")


# The command that writes each ledger: what a damaged one is made again with.
_WRITTEN_BY = {"raw": "pipe crawl", "prepared": "pipe prepare", "lines": "pipe extract", "shards": "pipe shard", "imports": "pipe import pairs"}


def recovery_hint(stage: str) -> str:
    command = _WRITTEN_BY.get(stage, f"the {stage} stage")
    return f"restore it from a backup, or make it again with `{command} ... --redo`"


def check_ledger_file(path: Path, stage: str, columns: list[str] | None = None) -> CheckedTable:
    """Read one ledger file (only `columns`, when given) and verify its digest; LedgerError naming the
    file and the way back."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror or exc}") from exc
    with handle:
        try:
            return read_checksummed_handle(handle, columns)
        except Exception as exc:  # noqa: BLE001 - a digest mismatch, or one of pyarrow's several errors for damaged files
            raise _damaged(path, stage, exc) from exc


def read_ledger_file(path: Path, schema: LedgerSchema, columns: list[str] | None = None) -> pa.Table:
    """One ledger file conformed to `schema` (to its `columns`, when given); LedgerError if it is
    damaged or from a newer pipe."""
    present = None if columns is None else [name for name in columns if name in _column_names(path)]
    table = check_ledger_file(path, schema.stage, present).table
    _check_version(table.schema, path)
    metadata = dict(schema.arrow.metadata or {})
    if (table.schema.metadata or {}).get(SORTED_KEY) == SORTED_VALUE:
        metadata[SORTED_KEY] = SORTED_VALUE
    fields = schema.arrow if columns is None else [schema.arrow.field(name) for name in columns]
    return _conform(table, pa.schema(fields, metadata=metadata), path)


def _column_names(path: Path) -> set[str]:
    """The columns a ledger file holds (an older pipe's file may lack some), from its footer alone."""
    try:
        return set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException):
        return set()  # unreadable: the full read that follows names the damage


def _newest_rows_per_id(tables: list[pa.Table], id_column: str) -> pa.Table:
    """Concatenate in write order and keep, per id, only the rows of the last table that mentions it.

    Rows are returned sorted by (id, key) so that a ledger's bytes depend on its content, not on the
    order in which parallel workers happened to finish.
    """
    if len(tables) == 1 and (tables[0].schema.metadata or {}).get(SORTED_KEY) == SORTED_VALUE:
        return tables[0]  # a folded main file alone: already in order (one chunk per row group, not copied)
    tagged = [t.append_column(_SEQ, pa.array(np.full(t.num_rows, i, dtype=np.int32))) for i, t in enumerate(tables)]
    merged = pa.concat_tables(tagged)
    if len(tables) > 1:
        newest = merged.group_by(id_column).aggregate([(_SEQ, "max")])
        merged = merged.join(newest, keys=id_column)
        merged = merged.filter(pc.equal(merged[_SEQ], merged[f"{_SEQ}_max"])).drop_columns([f"{_SEQ}_max"])
    merged = merged.drop_columns([_SEQ])
    merged = merged.sort_by([(id_column, "ascending"), ("key", "ascending")])
    return merged.select(tables[0].schema.names).cast(tables[0].schema).combine_chunks()


def _conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    """Columns in schema order; columns an older version did not write are added as nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            try:
                columns.append(table[field.name].cast(field.type))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise LedgerError(f"ledger {path}: column {field.name!r} is not {field.type}: {exc}") from exc
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise LedgerError(f"ledger {path} lacks the required column {field.name!r}")
    return pa.Table.from_arrays(columns, schema=schema)


def rows_by_status(table: pa.Table) -> list[tuple[str, str, int]]:
    """(status, reason, count) for every combination present, most frequent first."""
    if table.num_rows == 0:
        return []
    counts = table.group_by(["status", "reason"], use_threads=False).aggregate([([], "count_all")])
    rows = [
        (status, reason or "", int(count))
        for status, reason, count in zip(
            counts["status"].to_pylist(), counts["reason"].to_pylist(), counts["count_all"].to_pylist()
        )
    ]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))
