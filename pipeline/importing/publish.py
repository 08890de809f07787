"""The import run: the stage, then the prepared.parquet and lines.parquet rows its ledger implies.

One stage writes three ledgers without bending the stage contract:

- ROOT/imports.parquet is the import's own ledger and its resumable unit (one row per pair, written
  by the runner inside the import's session like any stage's);
- prepared.parquet and lines.parquet rows are *derived* from it: every settled pair becomes one
  prepared row (`source` = the pair's id, status and reason as the pair's), every ok pair one
  `real/<key>` lines row. They are published after the stage, inside sessions of those two ledgers
  held for the whole run (their locks keep `pipe prepare` and `pipe extract` out meanwhile), and
  only rows that differ from what the ledgers hold are appended. A run killed anywhere leaves the
  import ledger to resume from; the next run, even one with nothing left to import, publishes what
  is missing, so the result is the same as an uninterrupted run's.
- a `real` line whose pair is no longer kept (after a `--redo` with other options) gets a rejected
  row instead, and its files are removed (the colour only when no other ok prepared row uses it).

A `--redo` removes the files of the pairs kept so far before importing again; a resume refuses to
start when some of them are gone (`pipe prepare --redo` empties ROOT/prepared/, imported images too).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from manifests import reasons
from manifests.ledger import Ledger
from manifests.layout import PREPARED_TREE, DatasetLayout
from manifests.schema import IMPORTS, LINES, PREPARED, STATUS_OK, STATUS_REJECTED, LedgerSchema
from pipeline.errors import PipeError
from pipeline.importing.pairs import REAL_METHOD, line_params_json
from pipeline.importing.stage import ImportStage
from pipeline.runner import RunnerConfig, run_stage
from pipeline.session import RunReport, StageSession, make_dataset_folder

# Columns of an imports row that a prepared row has under the same name.
_PREPARED_COLUMNS = [field.name for field in PREPARED.fields if field.name in IMPORTS.arrow.names and field.name != PREPARED.id_column]


@dataclass(frozen=True)
class Published:
    """Rows appended to prepared.parquet and lines.parquet by one run (0 when they were up to date)."""

    prepared: int
    lines: int


def run_import(stage: ImportStage, config: RunnerConfig, label: str = "import pairs") -> tuple[RunReport, Published]:
    stage.plan()  # the source is checked before anything is written (the runner plans again)
    root = Path(stage.root)
    make_dataset_folder(root)
    save_every = config.flush_seconds
    with (
        StageSession(root, PREPARED.stage, PREPARED, save_every=save_every, redo=config.redo) as prepared,
        # Only the prepared generation changes with a redo: extract and shard then refuse to resume
        # from lines and shards made from the images it replaced (one warning says so).
        StageSession(root, LINES.stage, LINES, save_every=save_every) as lines,
    ):
        if config.redo:
            _remove_imported_files(root)
        else:
            _require_imported_files(root)
        report = run_stage(stage, root, config, label=label)
        published = publish(stage, prepared, lines)
    return report, published


def _kept_pairs(root: Path) -> list[dict]:
    table = Ledger(root, IMPORTS).read()
    return [row for row in table.select(["status", "path", "line_path"]).to_pylist() if row["status"] == STATUS_OK]


def _remove_imported_files(root: Path) -> None:
    """A redo makes every file again with the new options: the old ones go first (a pair only writes
    a colour file that is not there, so as to leave alone one that `pipe prepare` made)."""
    for row in _kept_pairs(root):
        for relative in (row["path"], row["line_path"]):
            if relative:
                (root / relative).unlink(missing_ok=True)


def _require_imported_files(root: Path) -> None:
    """Refuse to resume over imported files that are gone (`pipe prepare --redo` empties ROOT/prepared/)."""
    missing = [relative for row in _kept_pairs(root) for relative in (row["path"], row["line_path"]) if relative and not (root / relative).is_file()]
    if missing:
        raise PipeError(
            f"{len(missing):,} files of imported pairs are missing from {root} (e.g. {missing[0]}; `pipe prepare --redo` "
            "empties prepared/): add --redo to import the pairs again"
        )


def publish(stage: ImportStage, prepared: StageSession, lines: StageSession) -> Published:
    """Append the prepared and lines rows the import ledger implies and the ledgers lack."""
    imports = [row for row in Ledger(prepared.root, IMPORTS).read().to_pylist() if row["dedupe_settled"]]
    assert prepared.ledger is not None and lines.ledger is not None
    prepared_rows = _changed(PREPARED, prepared.ledger, [prepared_row(row) for row in imports])
    kept = {row["key"]: row for row in imports if row["status"] == STATUS_OK}
    wanted = [line_row(row, line_params_json(stage.config, row)) for row in kept.values()]
    wanted += _dropped_lines(lines.ledger.read(), kept, imports)
    line_rows = _changed(LINES, lines.ledger, wanted)
    _remove_dropped_files(prepared, [row for row in line_rows if row["status"] != STATUS_OK], prepared_rows)
    prepared.record(prepared_rows)
    lines.record(line_rows)
    return Published(len(prepared_rows), len(line_rows))


def prepared_row(row: dict) -> dict:
    """The prepared.parquet row of one settled pair: the colour as `pipe prepare` records an image."""
    return {"key": row["key"], "status": row["status"], "reason": row["reason"], "detail": row["detail"], "source": row["pair"],
            **{name: row[name] for name in _PREPARED_COLUMNS}}


def line_row(row: dict, params: str) -> dict:
    """The lines.parquet row of one ok pair: its sketch as the line method `real`."""
    return {
        "key": row["key"], "status": STATUS_OK, "reason": None, "detail": None,
        "line": f"{REAL_METHOD}/{row['key']}", "method": REAL_METHOD, "params": params, "seed": None,
        # The drawing it was made from (extract records the prepared image it read).
        "source_path": row["sketch_source"], "path": row["line_path"],
        "width": row["width"], "height": row["height"], "ink_fraction": row["ink_fraction"], "device": "cpu",
    }


def _dropped_lines(table: pa.Table, kept: dict[str, dict], imports: list[dict]) -> list[dict]:
    """A rejected row for each ok `real` line whose key no imported pair keeps any more."""
    why = {row["key"]: row for row in imports if row["key"] and row["status"] != STATUS_OK}
    rows = []
    real = table.filter(pc.and_(pc.equal(table["method"], REAL_METHOD), pc.equal(table["status"], STATUS_OK)))
    for line in real.to_pylist():
        if line["key"] in kept:
            continue
        pair = why.get(line["key"])
        reason = pair["reason"] if pair is not None else reasons.MISSING_INPUT
        detail = f"the imported pair is not kept any more ({pair['detail'] if pair is not None else 'not in imports.parquet'})"
        rows.append({**line, "status": STATUS_REJECTED, "reason": reason, "detail": detail, "path": None})
    return rows


def _remove_dropped_files(prepared: StageSession, dropped_lines: list[dict], prepared_rows: list[dict]) -> None:
    """Delete the files of lines no longer kept (before their rows are saved: a kill in between redoes it).

    The colour file goes too unless an ok prepared row (an image `pipe prepare` made, say) still uses it.
    """
    if not dropped_lines:
        return
    layout = DatasetLayout(prepared.root)
    assert prepared.ledger is not None
    table = prepared.ledger.read()
    replaced = {row["source"] for row in prepared_rows}
    in_use = {row["key"] for row in [*(r for r in table.to_pylist() if r["source"] not in replaced), *prepared_rows] if row["status"] == STATUS_OK}
    for line in dropped_lines:
        layout.line_art(REAL_METHOD, line["key"]).unlink(missing_ok=True)
        if line["key"] not in in_use:
            layout.sample(PREPARED_TREE, line["key"], "png").unlink(missing_ok=True)


def _changed(schema: LedgerSchema, ledger: Ledger, rows: list[dict]) -> list[dict]:
    """The rows (by id) that differ from what `ledger` holds, compared as the ledger stores them."""
    if not rows:
        return []
    wanted: dict[str, list[dict]] = defaultdict(list)
    for row in pa.Table.from_pylist(rows, schema=schema.arrow).to_pylist():
        wanted[row[schema.id_column]].append(row)
    table = ledger.read()
    table = table.filter(pc.is_in(table[schema.id_column], pa.array(sorted(wanted), pa.string())))
    held: dict[str, list[dict]] = defaultdict(list)
    for row in table.to_pylist():
        held[row[schema.id_column]].append(row)
    return [row for identity in sorted(wanted) if _sorted(wanted[identity]) != _sorted(held.get(identity, [])) for row in wanted[identity]]


def _sorted(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: row["key"])
