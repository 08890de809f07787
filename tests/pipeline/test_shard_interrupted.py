"""`pipe shard` stopped mid-shard (Ctrl-C, a full disk): one line, no half shard, and the rerun gives
the shards and ledger an uninterrupted run gives."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from manifests.schema import SHARDS
from pipeline.cli import main
from pipeline.shard import writer as shard_writer
from tests.helpers import make_prepared_dataset

OPTIONS = ("--val", "0.25", "--shard-samples", "4", "--hints", "points", "--workers", "0")
COUNT = 14


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interrupted") / "root"
    make_prepared_dataset(root, COUNT, size=48)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    return root


@pytest.fixture(scope="module")
def uninterrupted(extracted, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("whole") / "root"
    shutil.copytree(extracted, root)
    assert main(["shard", str(root), *OPTIONS]) == 0
    return root


@pytest.fixture
def root(extracted, tmp_path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(extracted, copy)
    return copy


def shard_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "shards").rglob("*")) if p.is_file()}


def ledger_rows(root: Path) -> list[tuple]:
    """The shards ledger's outcome per key (not its timestamps)."""
    table = pq.read_table(root / "shards.parquet")
    columns = ["key", "status", "reason", *(f.name for f in SHARDS.fields)]
    return sorted(zip(*(table[name].to_pylist() for name in columns)))


def fail_tar_writes_after(monkeypatch, writes: int, error: BaseException) -> None:
    """The shard tar's writes raise `error` from the `writes`-th on (the tar stream flushes every 10 KiB)."""
    real_write, count = shard_writer._HashingFile.write, [0]

    def write(self, data: bytes) -> int:
        count[0] += 1
        if count[0] >= writes and not getattr(self, "discarding", False):
            raise error
        return real_write(self, data)

    monkeypatch.setattr(shard_writer._HashingFile, "write", write)


# Ctrl-C arrives during the 6th write of a shard tar; then the process exits, as `pipe` does, and
# Python finalizes what is left (where `Exception ignored in: _Stream.__del__` was printed).
CTRL_C_RUN = """
import sys
from pipeline.cli import main
from pipeline.shard import writer
real_write, count = writer._HashingFile.write, [0]
def write(self, data):
    count[0] += 1
    if count[0] == 6:
        raise KeyboardInterrupt
    return real_write(self, data)
writer._HashingFile.write = write
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_mid_shard_says_interrupted_and_nothing_more(root, uninterrupted):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, "-c", CTRL_C_RUN, "shard", str(root), *OPTIONS], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode != 0
    assert "interrupted" in run.stderr
    assert "Exception ignored" not in run.stderr and "write to closed file" not in run.stderr, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert not list((root / "shards").rglob("*.tmp")), "no half shard left"
    assert main(["shard", str(root), *OPTIONS]) == 0
    assert shard_files(root) == shard_files(uninterrupted)
    assert ledger_rows(root) == ledger_rows(uninterrupted)


def disk_full_path(capsys) -> Path:
    """The file the one `no space left` line names (the stage session's DiskFull)."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # a progress line may precede it
    assert len(errors) == 1 and "Traceback" not in err and errors[0].startswith("error: no space left on device writing "), err
    return Path(errors[0].removeprefix("error: no space left on device writing ").split(": ")[0])


@pytest.mark.parametrize("writes", [3, 9])
def test_a_full_disk_names_the_shard_and_the_rerun_equals_an_uninterrupted_run(root, uninterrupted, monkeypatch, capsys, writes):
    """The tar writer lets ENOSPC through, naming the shard; nothing of the unfinished shard stays."""

    fail_tar_writes_after(monkeypatch, writes, OSError(errno.ENOSPC, "No space left on device"))
    capsys.readouterr()
    assert main(["shard", str(root), *OPTIONS]) == 2
    named = disk_full_path(capsys)
    assert named.parent.parent == root / "shards" and named.suffix == ".tar"
    monkeypatch.undo()
    leftovers = [p for p in (root / "shards").rglob("*") if p.is_file() and (p.suffix == ".tmp" or p.suffix in (".tar", ".parquet") and not p.with_name(p.stem + "_stats.json").exists())]
    assert leftovers == []
    assert main(["shard", str(root), *OPTIONS]) == 0
    assert shard_files(root) == shard_files(uninterrupted)
    assert ledger_rows(root) == ledger_rows(uninterrupted)


@pytest.mark.parametrize("failing", ["parquet", "_stats.json"])
def test_a_full_disk_writing_a_sidecar_or_done_marker_drops_the_published_tar(root, uninterrupted, monkeypatch, capsys, failing):
    """The tar is in place when its sidecar or done-marker meets the full disk: it goes too, the error names that file."""
    real_write, calls = shard_writer.write_bytes_atomic, [0]

    def write_bytes_atomic(final: Path, data: bytes, *args, **kwargs) -> None:
        if final.name.endswith(failing):
            calls[0] += 1
            if calls[0] == 2:  # the second shard's
                raise OSError(errno.ENOSPC, "No space left on device")
        real_write(final, data, *args, **kwargs)

    monkeypatch.setattr(shard_writer, "write_bytes_atomic", write_bytes_atomic)
    capsys.readouterr()
    assert main(["shard", str(root), *OPTIONS]) == 2
    assert disk_full_path(capsys).name.endswith(failing)
    monkeypatch.undo()
    shard_members = [p for p in (root / "shards").glob("*/*") if p.name[0].isdigit()]
    assert [p for p in shard_members if not (p.parent / f"{p.name[:5]}_stats.json").exists()] == [], "no half shard"
    assert main(["shard", str(root), *OPTIONS]) == 0
    assert shard_files(root) == shard_files(uninterrupted)
    assert ledger_rows(root) == ledger_rows(uninterrupted)


def test_a_full_disk_is_one_line_naming_the_path(root, monkeypatch, capsys):
    fail_tar_writes_after(monkeypatch, 9, OSError(errno.ENOSPC, "No space left on device"))
    assert main(["shard", str(root), *OPTIONS]) != 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and lines[-1].startswith("error: no space left on device writing "), err
    assert all(not line.startswith("error") for line in lines[:-1]) and len(lines) <= 2, err  # at most the bar's last line before it
    assert str(root / "shards") in lines[-1] and "rows saved; free space and run the same command again" in lines[-1]
