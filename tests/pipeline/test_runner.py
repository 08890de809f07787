"""The stage runner, on a toy stage: resume, failures as rows, crashed workers, locking."""

from __future__ import annotations

import fcntl

import pytest

from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from pipeline.errors import PipeError
from pipeline.runner import RunnerConfig, run_stage
from tests.pipeline.toy_stage import TOY, ToyStage


def _stage(tmp_path, names):
    calls = tmp_path / "calls"
    calls.mkdir(exist_ok=True)
    return ToyStage(names=tuple(names), calls=calls)


def _statuses(root):
    return {row["key"]: (row["status"], row["reason"]) for row in Ledger(root, TOY).read().to_pylist()}


@pytest.mark.parametrize("workers", [0, 2])
def test_exceptions_become_failed_rows_and_the_run_goes_on(tmp_path, workers):
    names = [f"item{i:02d}" for i in range(20)] + ["boom1"]
    report = run_stage(_stage(tmp_path, names), tmp_path / "root", RunnerConfig(workers=workers, chunk_size=3))
    statuses = _statuses(tmp_path / "root")
    assert len(statuses) == 21 and report.processed == 21
    assert statuses["boom1"] == ("failed", "exception")
    assert all(statuses[f"item{i:02d}"] == ("ok", None) for i in range(20))
    row = [r for r in Ledger(tmp_path / "root", TOY).read().to_pylist() if r["key"] == "boom1"][0]
    assert row["detail"].startswith("ValueError: cannot handle boom1 (toy_stage.py:")


def test_resume_skips_what_the_ledger_holds(tmp_path):
    root = tmp_path / "root"
    run_stage(_stage(tmp_path, [f"a{i}" for i in range(10)]), root, RunnerConfig(workers=0))
    assert len(list((tmp_path / "calls").iterdir())) == 10
    again = run_stage(_stage(tmp_path, [f"a{i}" for i in range(10)]), root, RunnerConfig(workers=0))
    assert again.nothing_to_do and again.skipped == 10
    assert len(list((tmp_path / "calls").iterdir())) == 10  # no sample ran twice
    more = run_stage(_stage(tmp_path, [f"a{i}" for i in range(12)]), root, RunnerConfig(workers=0))
    assert more.processed == 2 and len(_statuses(root)) == 12


def test_a_crashing_worker_costs_only_its_own_sample(tmp_path):
    names = [f"item{i:02d}" for i in range(16)]
    names.insert(7, "crash-me")
    run_stage(_stage(tmp_path, names), tmp_path / "root", RunnerConfig(workers=2, chunk_size=4))
    statuses = _statuses(tmp_path / "root")
    assert len(statuses) == 17
    assert statuses.pop("crash-me") == ("failed", "worker_crashed")
    assert set(statuses.values()) == {("ok", None)}


def test_finished_run_leaves_one_ledger_file_and_no_temporaries(tmp_path):
    root = tmp_path / "root"
    run_stage(_stage(tmp_path, ["x", "y"]), root, RunnerConfig(workers=0, flush_seconds=0))
    assert (root / "toy.parquet").is_file()
    assert Ledger(root, TOY).pending_parts() == []
    assert not DatasetLayout(root).tmp("toy").exists()


def test_a_second_run_on_the_same_dataset_is_refused(tmp_path):
    root = tmp_path / "root"
    lock = DatasetLayout(root).lock("toy")
    lock.parent.mkdir(parents=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(PipeError, match="another run of stage 'toy'"):
            run_stage(_stage(tmp_path, ["x"]), root, RunnerConfig(workers=0))
