"""Folding a ledger's parts into its main file: streamed in batches, the same rows as merging whole,
bytes that depend on the rows alone, folds during a long run, and memory that does not grow with the
main file."""

from __future__ import annotations

import errno
import random
import subprocess
import sys

import pyarrow as pa
import pytest

import manifests.checksummed as checksummed
import manifests.ledger as ledger_module
from manifests.ledger import Ledger, LedgerError, _newest_rows_per_id
from manifests.schema import LedgerSchema

MULTI = LedgerSchema(stage="multi", id_column="source", fields=(pa.field("source", pa.string(), nullable=False), pa.field("n", pa.int64())))


def _rows(rng: random.Random, ids: list[str], tag: int) -> list[dict]:
    """One to three rows per id (an input can give several keys), `n` telling the writes apart."""
    return [{"source": i, "key": f"{i}_k{j}", "status": rng.choice(["ok", "rejected"]), "reason": None, "n": tag}
            for i in ids for j in range(rng.randint(1, 3))]


def _history(rng: random.Random, writes: int) -> list[list[dict]]:
    """Appends over a growing id space: new ids, and ids written again (their newest write wins)."""
    out, space = [], []
    for tag in range(writes):
        fresh = [f"id{rng.randrange(10**6):06d}" for _ in range(rng.randint(1, 40))]
        again = rng.sample(space, min(len(space), rng.randint(0, 15)))
        space += fresh
        out.append(_rows(rng, list(dict.fromkeys(fresh + again)), tag))
    return out


@pytest.fixture
def small_batches(monkeypatch):
    """Batches and row groups of a few rows, so that a test's few hundred rows cross many boundaries."""
    monkeypatch.setattr(ledger_module, "MERGE_BATCH_ROWS", 7)
    monkeypatch.setattr(checksummed, "ROW_GROUP_ROWS", 13)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_streamed_fold_gives_the_rows_a_whole_merge_gives(tmp_path, small_batches, seed):
    rng = random.Random(seed)
    history = _history(rng, 30)
    ledger = Ledger(tmp_path, MULTI)
    tables = []
    for index, rows in enumerate(history):
        ledger.append(rows)
        tables.append(pa.Table.from_pylist(rows, schema=MULTI.arrow))
        if index % 7 == 6:  # several folds, each merging parts into a main file of many batches
            assert ledger.compact()
    ledger.compact()
    expected = _newest_rows_per_id(tables, "source")
    assert ledger.read().to_pylist() == expected.to_pylist()
    assert len(ledger.read()) > 300


def test_the_main_file_s_bytes_depend_on_its_rows_not_on_when_it_was_folded(tmp_path, small_batches):
    history = _history(random.Random(5), 24)
    once, often = Ledger(tmp_path / "once", MULTI), Ledger(tmp_path / "often", MULTI)
    for index, rows in enumerate(history):
        once.append(rows)
        often.append(rows)
        if index % 3 == 0:
            often.compact()
    once.compact(), often.compact()
    assert once.path.read_bytes() == often.path.read_bytes()
    assert checksummed.verify_checksummed_file(once.path) is True


def test_a_long_run_folds_as_it_goes_and_keeps_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_module, "FOLD_ROWS", 50)
    ledger = Ledger(tmp_path, MULTI)
    rows = [{"source": f"s{i:05d}", "key": f"k{i:05d}", "status": "ok", "reason": None, "n": i} for i in range(1000)]
    most_parts = 0
    for start in range(0, len(rows), 10):
        ledger.append(rows[start : start + 10])
        most_parts = max(most_parts, len(ledger.pending_parts()))
    # Folds at 50 pending rows, then at a quarter of the main file: never a pile of parts.
    assert most_parts <= 25 and ledger.path.is_file()
    assert ledger.read().to_pylist() == pa.Table.from_pylist(rows, schema=MULTI.arrow).to_pylist()


def test_a_full_disk_during_a_fold_keeps_the_parts_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(ledger_module, "FOLD_ROWS", 20)
    ledger = Ledger(tmp_path, MULTI)
    real = ledger_module.write_checksummed_parquet

    def full_for_the_main_file(path, schema, tables):
        if path.name.startswith("multi.parquet"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, schema, tables)

    monkeypatch.setattr(ledger_module, "write_checksummed_parquet", full_for_the_main_file)
    for start in range(0, 60, 10):
        ledger.append([{"source": f"s{i:03d}", "key": f"k{i:03d}", "status": "ok", "reason": None, "n": i} for i in range(start, start + 10)])
    assert len(ledger.pending_parts()) == 6 and not ledger.path.exists() and len(ledger.read()) == 60
    assert "too full to fold" in caplog.text
    assert not list(tmp_path.rglob("*.tmp"))
    with pytest.raises(OSError):  # the end of the run still tries, and says so
        ledger.compact()
    assert len(ledger.read()) == 60


def test_a_damaged_main_file_is_named_and_its_parts_are_kept(tmp_path):
    ledger = Ledger(tmp_path, MULTI)
    ledger.append(_rows(random.Random(1), [f"a{i}" for i in range(50)], 0))
    ledger.compact()
    data = bytearray(ledger.path.read_bytes())
    data[len(data) // 3] ^= 0x10
    ledger.path.write_bytes(bytes(data))
    ledger.append(_rows(random.Random(2), ["b0"], 1))
    with pytest.raises(LedgerError, match=r"multi\.parquet: it is damaged .*--redo"):
        ledger.compact()
    assert len(ledger.pending_parts()) == 1 and not list(tmp_path.rglob("*.tmp"))


BIG = LedgerSchema(stage="big", id_column="source", fields=(pa.field("source", pa.string(), nullable=False), pa.field("text", pa.string())))


def _fold_peak(root, n: int) -> tuple[int, int]:
    """(Arrow's peak allocation while a fresh interpreter folds one row into an n-row main file, the
    main file's size in memory)."""
    ids = pa.array([f"s{i:07d}" for i in range(n)])
    given = {"source": ids, "key": ids, "status": pa.array(["ok"] * n), "text": pa.array(["x" * 200 + str(i) for i in range(n)])}
    table = pa.table({f.name: given.get(f.name, pa.nulls(n, f.type)) for f in BIG.arrow}).cast(BIG.arrow)
    Ledger(root, BIG)._write(table, Ledger(root, BIG).path)
    code = (
        "import sys, pyarrow as pa\nfrom pathlib import Path\nfrom manifests.ledger import Ledger\n"
        "from tests.manifests.test_ledger_fold import BIG\n"
        "ledger = Ledger(Path(sys.argv[1]), BIG)\n"
        "ledger.append([{'source': 's0000005', 'key': 'new', 'status': 'ok', 'reason': None, 'text': 'again'}])\n"
        "ledger.compact()\nprint(pa.default_memory_pool().max_memory())\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = Ledger(root, BIG).read().to_pylist()
    assert len(rows) == n and {k: rows[5][k] for k in ("source", "key", "text")} == {"source": "s0000005", "key": "new", "text": "again"}
    return int(done.stdout.split()[-1]), table.nbytes


def test_folding_into_a_large_main_file_holds_a_few_row_groups_not_the_file(tmp_path):
    """Folding a part into a 150k-row and a 600k-row main file: Arrow's peak allocation is the same
    few row groups for both (63 MB here), under the larger file's size in memory (149 MB). Before, the main file was
    read whole and copied by the merge and the sort: several times its size."""
    small, _ = _fold_peak(tmp_path / "small", 150_000)
    large, whole = _fold_peak(tmp_path / "large", 600_000)
    assert large < 1.3 * small and large < 0.75 * whole, (small, large, whole)
