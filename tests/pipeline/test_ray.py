"""`--executor ray`: the same datasets as the local executor, byte for byte; a lost Ray worker costs no
row; pipe's shards are Ray Data input as they are. A local Ray runtime with 2 CPUs, started and
stopped by the tests."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]')")

from pipeline.cli import main  # noqa: E402
from pipeline.executors import ExecutorSpec, start_executor  # noqa: E402
from pipeline.demo.illustrations import save_rgb  # noqa: E402
from tests.helpers import make_sharded_dataset, picture  # noqa: E402
from train.ray_data import read_split  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def ray_runtime():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return make_sharded_dataset(tmp_path_factory.mktemp("raydata") / "root", 16, SIZE, "--hints", "patches,palette", "--artifacts", "paste", "--val", "0.25", "--shard-samples", "4")


@pytest.mark.slow
def test_ray_data_reads_every_shard_with_every_member_decoded(ray_runtime, shards):
    ledger = pq.read_table(shards / "shards.parquet").to_pylist()
    ok = {row["key"] for row in ledger if row["status"] == "ok"}
    rows = []
    for split in ("train", "val"):
        rows += read_split(shards / "shards" / split).take_all()
    assert sorted(row["__key__"] for row in rows) == sorted(ok)
    for row in rows:
        assert row["color.png"].shape == (SIZE, SIZE, 3) and row["line.png"].shape == (SIZE, SIZE)
        assert row["hint.png"].shape == (SIZE, SIZE, 4) and row["draft.png"].shape == (SIZE, SIZE, 3)
        assert row["json"]["key"] == row["__key__"] and row["palette.npy"].ndim == 3


def _build(source: Path, root: Path, *executor: str) -> None:
    """prepare, extract (two CPU methods) and shard on `root` with the given executor options."""
    assert main(["prepare", str(source), str(root), "--size", "128", "--min-side", "256", "--chunk-size", "3", *executor]) == 0
    assert main(["extract", str(root), "--method", "xdog,dilate", "--batch-size", "4", *executor]) == 0
    assert main(["shard", str(root), "--hints", "points,patches", "--val", "0.25", "--shard-samples", "5", *executor]) == 0


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and ".pipe" not in p.parts}


def test_ray_and_local_executors_build_byte_identical_datasets(ray_runtime, tmp_path):
    source = tmp_path / "source"
    for index in range(14):
        save_rgb(source / f"img{index:02d}.{'png' if index % 3 else 'jpg'}", picture(index, 300 + 7 * index, 280))
    (source / "broken.jpg").write_bytes(b"not an image")  # a failed row on both executors
    _build(source, tmp_path / "local", "--workers", "2")
    _build(source, tmp_path / "ray", "--executor", "ray", "--workers", "2")
    local, on_ray = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert sorted(local) == sorted(on_ray)
    assert {name for name in local if local[name] != on_ray[name]} == set()
    assert any(name.startswith("shards/train/") and name.endswith(".tar") for name in local)
    assert len([name for name in local if name.startswith("lines/")]) == 2 * 14


def test_executor_ray_without_a_running_cluster_to_join_is_one_line(tmp_path, capsys):
    source = tmp_path / "source"
    save_rgb(source / "a.png", picture(0))
    assert main(["prepare", str(source), str(tmp_path / "root"), "--ray-address", "auto"]) == 2
    assert "--ray-address goes with --executor ray" in capsys.readouterr().err


def _slow_double(item: int) -> list[int]:
    """Item 5 records its worker's PID (once) and waits to be killed; everything else doubles."""
    marker = Path(os.environ["PIPE_TEST_PID_FILE"])
    if item == 5 and not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(60)
    return [2 * item]


def _failed(item: int, reason: str, detail: str) -> list[str]:
    return [reason]


@pytest.mark.parametrize("stateful", [pytest.param(False, marks=pytest.mark.slow), pytest.param(True, marks=pytest.mark.slow)], ids=["tasks", "actors"])  # tasks: ~50 s on 2 cores
def test_a_killed_ray_worker_only_reruns_its_unit_and_no_result_is_doubled(ray_runtime, tmp_path, monkeypatch, stateful):
    marker = tmp_path / "pid"
    monkeypatch.setenv("PIPE_TEST_PID_FILE", str(marker))
    ray.shutdown()  # a runtime that sees the variable
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False, runtime_env={"env_vars": {"PIPE_TEST_PID_FILE": str(marker)}})
    results = []
    with start_executor(ExecutorSpec("ray", 2), _slow_double, _failed, ordered=True, stateful=stateful) as executor:
        for start in range(0, 12, 3):
            executor.submit(list(range(start, start + 3)))
            results += executor.finished()
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(marker.read_text()), signal.SIGKILL)
        results += list(executor.drain())
    assert [item for unit in results for item in unit.items] == list(range(12))
    assert [r for unit in results for r in unit.flat()] == [2 * i for i in range(12)]  # each once, none failed


def _busy_ray_task_pids() -> list[int]:
    """PIDs of Ray worker processes running one of pipe's units (Ray titles them `ray::_run_unit`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_run_unit"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_prepare_on_ray_survives_a_worker_killed_mid_run(ray_runtime, tmp_path):
    import threading

    source, root = tmp_path / "source", tmp_path / "root"
    for index in range(40):
        save_rgb(source / f"img{index:02d}.png", picture(index, 900, 800))
    outcome: list[int] = []
    run = threading.Thread(target=lambda: outcome.append(main(["prepare", str(source), str(root), "--executor", "ray", "--workers", "2", "--chunk-size", "4"])))
    run.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and run.is_alive() and time.monotonic() < deadline:
        pids = _busy_ray_task_pids()
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    run.join(timeout=300)
    assert killed is not None, "no Ray worker was seen running a unit"
    assert outcome == [0]
    rows = pq.read_table(root / "prepared.parquet").to_pylist()
    assert sorted(row["source"] for row in rows) == sorted(str(p) for p in source.iterdir())  # every input once
    assert {row["status"] for row in rows} == {"ok"}  # the lost unit was re-run, not recorded failed
    assert len(list((root / "prepared").rglob("*.png"))) == 40
