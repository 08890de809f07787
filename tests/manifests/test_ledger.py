"""The Parquet ledger: merge semantics, atomic compaction, versions, damaged files."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.ledger import Ledger, LedgerError, rows_by_status
from manifests.schema import SCHEMA_VERSION, LedgerSchema

MULTI = LedgerSchema(stage="multi", id_column="source", fields=(pa.field("source", pa.string(), nullable=False), pa.field("n", pa.int64())))


def _row(source, key, status="ok", n=0, reason=None):
    return {"source": source, "key": key, "status": status, "reason": reason, "n": n}


def test_newest_write_replaces_every_row_of_an_id(tmp_path):
    ledger = Ledger(tmp_path, MULTI)
    ledger.append([_row("a", "a_f0"), _row("a", "a_f1"), _row("b", "b")])
    ledger.append([_row("a", "a", "rejected", reason="no_face")])
    rows = ledger.read().to_pylist()
    assert [(r["source"], r["key"], r["status"]) for r in rows] == [("a", "a", "rejected"), ("b", "b", "ok")]
    assert ledger.ids() == {"a", "b"}


def test_compact_folds_parts_into_one_file_with_the_same_content(tmp_path):
    ledger = Ledger(tmp_path, MULTI)
    for index in range(5):
        ledger.append([_row(f"s{index}", f"k{index}", n=index)])
    before = ledger.read()
    assert len(ledger.pending_parts()) == 5
    assert ledger.compact() is True
    assert ledger.pending_parts() == [] and ledger.path.is_file()
    assert ledger.read().equals(before)
    assert ledger.compact() is False
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.rglob("*.tmp"))


def test_ledger_bytes_do_not_depend_on_write_order(tmp_path):
    rows = [_row(f"s{index:02d}", f"k{index}", n=index) for index in range(30)]
    files = []
    for name, order in (("one", rows), ("two", rows[::-1])):
        ledger = Ledger(tmp_path / name, MULTI)
        for start in range(0, 30, 7):
            ledger.append(order[start : start + 7])
        ledger.compact()
        files.append(ledger.path.read_bytes())
    assert files[0] == files[1]


def test_a_crash_after_compaction_but_before_part_removal_loses_and_duplicates_nothing(tmp_path):
    ledger = Ledger(tmp_path, MULTI)
    ledger.append([_row("a", "a"), _row("b", "b")])
    part = ledger.pending_parts()[0]
    saved = part.read_bytes()
    ledger.compact()
    part.write_bytes(saved)  # as if the process died between the rename and the unlink
    assert ledger.read().num_rows == 2


def test_older_files_get_missing_columns_as_nulls(tmp_path):
    old = pa.table({"key": ["k"], "status": ["ok"], "source": ["s"]})
    pq.write_table(old, tmp_path / "multi.parquet")
    row = Ledger(tmp_path, MULTI).read().to_pylist()[0]
    assert row["n"] is None and row["reason"] is None


def test_newer_schema_versions_are_refused(tmp_path):
    table = MULTI.arrow.empty_table().replace_schema_metadata({b"pipe.schema_version": str(SCHEMA_VERSION + 1).encode()})
    pq.write_table(table, tmp_path / "multi.parquet")
    with pytest.raises(LedgerError, match="upgrade pipe"):
        Ledger(tmp_path, MULTI).read()


def test_damaged_files_raise_a_ledger_error_naming_the_file(tmp_path):
    (tmp_path / "multi.parquet").write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(LedgerError, match="multi.parquet"):
        Ledger(tmp_path, MULTI).read()


def test_counts_by_status_and_reason():
    table = pa.Table.from_pylist(
        [_row("a", "a"), _row("b", "b"), _row("c", "c", "rejected", reason="too_small"), _row("d", "d", "failed", reason="exception")],
        schema=MULTI.arrow,
    )
    assert rows_by_status(table) == [("ok", "", 2), ("failed", "exception", 1), ("rejected", "too_small", 1)]


def test_appends_list_the_parts_folder_once_not_on_every_save(tmp_path, monkeypatch):
    """A long crawl saves tens of thousands of parts: listing them on each save made saves O(parts)."""
    ledger = Ledger(tmp_path, MULTI)
    listings = []
    real = Ledger.pending_parts
    monkeypatch.setattr(Ledger, "pending_parts", lambda self: listings.append(1) or real(self))
    for index in range(50):
        ledger.append([_row(f"s{index}", f"k{index}", n=index)])
    assert len(listings) == 1
    assert [p.name for p in real(ledger)] == [f"part-{n:08d}.parquet" for n in range(1, 51)]


def test_two_ledger_objects_of_one_stage_never_write_the_same_part(tmp_path):
    first, second = Ledger(tmp_path, MULTI), Ledger(tmp_path, MULTI)
    for index in range(6):
        (first if index % 2 else second).append([_row(f"s{index}", f"k{index}", n=index)])
    assert len(first.pending_parts()) == 6
    assert sorted(row["n"] for row in Ledger(tmp_path, MULTI).read().to_pylist()) == list(range(6))


def test_reading_some_columns_merges_parts_as_a_full_read_does(tmp_path):
    ledger = Ledger(tmp_path, MULTI)
    ledger.append([_row("a", "a_f0", n=1), _row("b", "b", n=2)])
    ledger.compact()
    ledger.append([_row("a", "a", "rejected", reason="no_face", n=3)])
    some = ledger.read(columns=["status", "reason"])
    assert some.column_names == ["source", "key", "status", "reason"]
    full = ledger.read()
    assert some.to_pylist() == full.select(some.column_names).to_pylist()
    assert rows_by_status(some) == rows_by_status(full)
    assert Ledger(tmp_path / "none", MULTI).read(columns=["status"]).column_names == ["source", "key", "status"]
