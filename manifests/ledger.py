"""The stage ledger: one Parquet table per stage, one or more rows per input, never silently short.

A finished ledger is a single file, `<root>/<stage>.parquet`. While a stage runs, it appends rows as
small part files under `<root>/.pipe/parts/<stage>/` (each written atomically), so a killed run keeps
everything it finished; `compact()` folds the parts into the main file (again atomically) and only
then removes them. Readers always see main file + parts merged, with newer writes for an input id
replacing older ones, so a crash between any two steps never loses or duplicates a row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from manifests.atomic import TMP_SUFFIX, write_bytes_atomic
from manifests.checksummed import CheckedTable, checksummed_parquet, read_checksummed_parquet
from manifests.layout import DatasetLayout
from manifests.schema import SCHEMA_VERSION, LedgerSchema
from manifests.errors import LedgerError  # noqa: F401 - raised here, and imported from here by callers

_PART_PREFIX = "part-"
_SEQ = "__seq"


class Ledger:
    def __init__(self, root: Path, schema: LedgerSchema) -> None:
        self.schema = schema
        self.layout = DatasetLayout(root)
        self.path = self.layout.ledger(schema.stage)
        self.parts_dir = self.layout.ledger_parts(schema.stage)
        self._last_seq: int | None = None  # number of the last part this object wrote or saw

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

    def ids(self) -> set[str]:
        return set(self.read().column(self.schema.id_column).to_pylist())

    # ----------------------------------------------------------------- writing
    def append(self, rows: Sequence[Mapping]) -> None:
        """Write `rows` as a new part. A later append for the same id replaces these rows on read."""
        if not rows:
            return
        table = pa.Table.from_pylist(list(rows), schema=self.schema.arrow)
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._write(table, self._next_part())

    def _next_part(self) -> Path:
        """The next part's path. The folder is listed once per Ledger, not on every append (a long crawl
        reaches tens of thousands of parts); a part that appeared meanwhile (another Ledger object of the
        same stage) is seen by its name being taken, and the folder is listed again."""
        seq = self._last_seq
        candidate = None if seq is None else self.parts_dir / f"{_PART_PREFIX}{seq + 1:08d}.parquet"
        if candidate is None or candidate.exists():
            existing = self.pending_parts()
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
        self._write(self.read(), self.path)
        for part in parts:  # the main file now holds their rows; a crash here only leaves duplicates read() merges
            part.unlink(missing_ok=True)
        return True

    def _write(self, table: pa.Table, final: Path) -> None:
        table = table.replace_schema_metadata(self.schema.arrow.metadata)
        write_bytes_atomic(final, checksummed_parquet(table), durable=True)


# The command that writes each ledger: what a damaged one is made again with.
_WRITTEN_BY = {"raw": "pipe crawl", "prepared": "pipe prepare", "lines": "pipe extract", "shards": "pipe shard", "imports": "pipe import pairs"}


def recovery_hint(stage: str) -> str:
    command = _WRITTEN_BY.get(stage, f"the {stage} stage")
    return f"restore it from a backup, or make it again with `{command} ... --redo`"


def check_ledger_file(path: Path, stage: str, columns: list[str] | None = None) -> CheckedTable:
    """Read one ledger file (only `columns`, when given) and verify its digest; LedgerError naming the
    file and the way back."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read ledger {path}: {exc.strerror or exc}") from exc
    try:
        return read_checksummed_parquet(data, columns)
    except Exception as exc:  # noqa: BLE001 - a digest mismatch, or one of pyarrow's several errors for damaged files
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LedgerError(f"cannot read ledger {path}: it is damaged ({why}); {recovery_hint(stage)}") from exc


def read_ledger_file(path: Path, schema: LedgerSchema, columns: list[str] | None = None) -> pa.Table:
    """One ledger file conformed to `schema` (to its `columns`, when given); LedgerError if it is
    damaged or from a newer pipe."""
    present = None if columns is None else [name for name in columns if name in _column_names(path)]
    table = check_ledger_file(path, schema.stage, present).table
    version = int((table.schema.metadata or {}).get(b"pipe.schema_version", b"1"))
    if version > SCHEMA_VERSION:
        raise LedgerError(f"ledger {path} has schema version {version}; this pipe reads up to {SCHEMA_VERSION}: upgrade pipe")
    target = schema.arrow if columns is None else pa.schema([schema.arrow.field(name) for name in columns], metadata=schema.arrow.metadata)
    return _conform(table, target, path)


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
    counts = table.group_by(["status", "reason"], use_threads=False).aggregate([("key", "count")])
    rows = [
        (status, reason or "", int(count))
        for status, reason, count in zip(
            counts["status"].to_pylist(), counts["reason"].to_pylist(), counts["key_count"].to_pylist()
        )
    ]
    return sorted(rows, key=lambda r: (-r[2], r[0], r[1]))
