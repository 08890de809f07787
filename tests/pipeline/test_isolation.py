"""One way of isolating failures, in every stage: the sample that raises, or whose worker process dies,
gets the only `failed` row of its batch; everything else in that batch is written and recorded ok."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.executors import local, start_executor
from tests.helpers import make_prepared_dataset
from tests.pipeline import faults

COUNT = 24


@pytest.fixture
def prepared(tmp_path):
    root = tmp_path / "root"
    keys = sorted(make_prepared_dataset(root, COUNT, size=64))
    return root, keys


def _statuses(table) -> dict[str, tuple[str, str | None]]:
    return {row["key"]: (row["status"], row["reason"]) for row in table.to_pylist()}


@pytest.mark.slow
def test_extract_records_only_the_crashing_and_the_raising_sample_as_failed(prepared, monkeypatch):
    root, keys = prepared
    crash, boom = keys[3], keys[5]  # both in the first device batch of 8
    monkeypatch.setenv(faults.CRASH_KEY, crash)
    monkeypatch.setenv(faults.RAISE_KEY, boom)
    monkeypatch.setattr("pipeline.extract.stage.write_line", faults.faulty_write_line)
    # 4 workers: 2 decode, 2 encode in a process pool (where the crash happens). Device batches (--device
    # on CPU runs the OpenCV forms per image instead: the next test) are what a CUDA run uses.
    monkeypatch.setattr("pipeline.extract.stage.opencv_methods", lambda methods, device_type: ())
    assert main(["extract", str(root), "--method", "xdog", "--workers", "4", "--batch-size", "8"]) == 0
    table = pq.read_table(root / "lines.parquet")
    statuses = _statuses(table)
    assert len(statuses) == COUNT
    assert statuses.pop(crash) == ("failed", "worker_crashed")
    assert statuses.pop(boom) == ("failed", "exception")
    assert set(statuses.values()) == {("ok", None)}
    detail = {row["key"]: row["detail"] for row in table.to_pylist()}[boom]
    assert detail.startswith(f"RuntimeError: injected failure for {boom[:8]} (faults.py:")
    written = {p.stem for p in (root / "lines" / "xdog").rglob("*.png")}
    assert written == set(keys) - {crash, boom}


@pytest.mark.slow
def test_extract_on_cpu_records_only_the_crashing_and_the_raising_sample_as_failed(prepared, monkeypatch):
    root, keys = prepared
    crash, boom = keys[1], keys[6]
    monkeypatch.setenv(faults.CRASH_KEY, crash)
    monkeypatch.setenv(faults.RAISE_KEY, boom)
    monkeypatch.setattr("pipeline.extract.stage.OpenCVItem", faults.FaultyOpenCVItem)
    assert main(["extract", str(root), "--method", "xdog,dilate", "--workers", "2", "--batch-size", "4"]) == 0
    table = pq.read_table(root / "lines.parquet")
    rows = {(row["method"], row["key"]): (row["status"], row["reason"]) for row in table.to_pylist()}
    assert len(rows) == 2 * COUNT
    for method in ("xdog", "dilate"):
        assert rows.pop((method, crash)) == ("failed", "worker_crashed")
        assert rows.pop((method, boom)) == ("failed", "exception")
    assert set(rows.values()) == {("ok", None)}
    assert all(json.loads(row["params"])["impl"] == "opencv" for row in table.to_pylist() if row["status"] == "ok")


@pytest.mark.slow
def test_shard_records_only_the_crashing_and_the_raising_sample_as_failed(prepared, monkeypatch):
    root, keys = prepared
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    crash, boom = keys[2], keys[9]
    monkeypatch.setenv(faults.CRASH_KEY, crash)
    monkeypatch.setenv(faults.RAISE_KEY, boom)
    monkeypatch.setattr("pipeline.shard.stage.synthesize_in_worker", faults.faulty_synthesize)
    assert main(["shard", str(root), "--lines", "xdog", "--hints", "points", "--workers", "2", "--shard-samples", "8", "--val", "0"]) == 0
    statuses = _statuses(pq.read_table(root / "shards.parquet"))
    assert len(statuses) == COUNT
    assert statuses.pop(crash) == ("failed", "worker_crashed")
    assert statuses.pop(boom) == ("failed", "exception")
    assert set(statuses.values()) == {("ok", None)}
    packed = [key for sidecar in sorted((root / "shards" / "train").glob("*.parquet")) for key in pq.read_table(sidecar)["key"].to_pylist()]
    assert packed == [key for key in keys if key not in (crash, boom)]  # every other sample once, in key order


def _double(item: int) -> list[int]:
    return [2 * item]


def _failed(item: int, reason: str, detail: str) -> list[str]:
    return [reason]


@pytest.mark.parametrize("workers", [0, 2])
def test_executor_hands_back_units_in_order_with_one_result_list_per_item(workers):
    with start_executor(local(workers), _double, _failed, ordered=True) as executor:
        finished = []
        for start in range(0, 30, 4):
            executor.submit(list(range(start, min(start + 4, 30))))
            finished += executor.finished()
        finished += list(executor.drain())
    assert [item for unit in finished for item in unit.items] == list(range(30))
    assert [r for unit in finished for r in unit.flat()] == [2 * i for i in range(30)]
