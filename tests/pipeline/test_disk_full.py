"""A full disk (ENOSPC) during a stage: one line naming the file and the rows really saved, a non-zero
exit, no half files; the same command rerun once space is free gives the ledger an uninterrupted run gives.

The disk fills up in-process (workers 0): the output or ledger write starts raising the operating
system's OSError after K writes, as a real full disk would from then on.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import manifests.ledger
import pipeline.extract.io
import pipeline.prepare.stage
from manifests.atomic import TMP_SUFFIX
from pipeline.cli import main
from tests.helpers import make_prepared_dataset, picture, save_rgb

COUNT = 6
# Columns that differ between two runs of the same inputs (when, how long).
_RUN_COLUMNS = {"processed_at", "seconds", "elapsed", "finished", "run_id", "started_at", "duration_s"}


class FillsUp:
    """Stands in for `write_bytes_atomic`: the first `allowed` writes succeed, then the disk is full."""

    def __init__(self, real, allowed: int) -> None:  # noqa: ANN001
        self.real, self.allowed, self.calls, self.failed_on = real, allowed, 0, None

    def __call__(self, final: Path, data: bytes, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        self.calls += 1
        if self.calls > self.allowed:
            self.failed_on = self.failed_on or final
            raise OSError(errno.ENOSPC, "No space left on device", str(final))
        self.real(final, data, *args, **kwargs)


class WriteFillsUp(FillsUp):
    """Stands in for the ledger's Parquet writer: the disk fills as write() reports it, naming no file."""

    def __call__(self, path: Path, *args, **kwargs) -> int:  # noqa: ANN002, ANN003
        self.calls += 1
        if self.calls > self.allowed:
            self.failed_on = self.failed_on or path
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.real(path, *args, **kwargs)


def _one_error_line(err: str) -> str:
    """The run's one error line (a progress bar may precede it); no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _saved_rows(root: Path, stage: str) -> int:
    """Rows the ledger holds (its parts, as a failed run leaves them uncompacted)."""
    parts = sorted((root / ".pipe" / "parts" / stage).glob("*.parquet"))
    return sum(pq.read_metadata(part).num_rows for part in parts)


def _comparable(path: Path) -> list[dict]:
    rows = pq.read_table(path).to_pylist()
    keep = [{k: v for k, v in row.items() if k not in _RUN_COLUMNS} for row in rows]
    return sorted(keep, key=lambda row: repr(sorted(row.items())))


def _no_half_files(root: Path) -> None:
    leftovers = [p for p in root.rglob(f"*{TMP_SUFFIX}") if p.is_file()]
    assert leftovers == [], leftovers


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("originals")
    for index in range(COUNT):
        save_rgb(folder / f"{index}.png", picture(index))
    return folder


def _prepare(source: Path, root: Path) -> int:
    return main(["prepare", str(source), str(root), "--workers", "0", "--save-every", "0"])


def test_prepare_output_write_on_a_full_disk_is_one_line_and_resumes(source, tmp_path, capsys, monkeypatch):
    clean = tmp_path / "clean"
    assert _prepare(source, clean) == 0
    capsys.readouterr()
    root = tmp_path / "root"
    full = FillsUp(pipeline.prepare.stage.write_bytes_atomic, allowed=3)
    monkeypatch.setattr(pipeline.prepare.stage, "write_bytes_atomic", full)
    assert _prepare(source, root) == 2
    line = _one_error_line(capsys.readouterr().err)
    saved = _saved_rows(root, "prepared")
    assert line == f"error: no space left on device writing {full.failed_on}: {saved} rows saved; free space and run the same command again"
    _no_half_files(root)
    monkeypatch.undo()  # space freed
    assert _prepare(source, root) == 0
    assert _comparable(root / "prepared.parquet") == _comparable(clean / "prepared.parquet")


def test_a_ledger_write_on_a_full_disk_reports_only_the_rows_really_saved(source, tmp_path, capsys, monkeypatch):
    clean = tmp_path / "clean"
    assert _prepare(source, clean) == 0
    capsys.readouterr()
    root = tmp_path / "root"
    full = WriteFillsUp(manifests.ledger.write_checksummed_parquet, allowed=1)  # one ledger part, then nothing more fits
    monkeypatch.setattr(manifests.ledger, "write_checksummed_parquet", full)
    assert _prepare(source, root) == 2
    line = _one_error_line(capsys.readouterr().err)
    match = re.fullmatch(r"error: no space left on device writing (.+): (\d+) rows saved; free space and run the same command again", line)
    assert match, line
    # write() names no file; the line names the part being written (not its temporary name).
    assert match.group(1) == str(full.failed_on).rsplit(".", 2)[0] and match.group(1).endswith(".parquet")
    assert full.failed_on.parent == root / ".pipe" / "parts" / "prepared"
    assert int(match.group(2)) == _saved_rows(root, "prepared") > 0
    _no_half_files(root)
    monkeypatch.undo()
    assert _prepare(source, root) == 0
    assert _comparable(root / "prepared.parquet") == _comparable(clean / "prepared.parquet")


def test_extract_on_a_full_disk_is_one_line_and_resumes(tmp_path, capsys, monkeypatch):
    clean, root = tmp_path / "clean", tmp_path / "root"
    make_prepared_dataset(clean, COUNT, size=128)
    make_prepared_dataset(root, COUNT, size=128)
    extract = ["extract", "--method", "xdog", "--workers", "0", "--save-every", "0"]
    assert main([extract[0], str(clean), *extract[1:]]) == 0
    capsys.readouterr()
    full = FillsUp(pipeline.extract.io.write_bytes_atomic, allowed=2)
    monkeypatch.setattr(pipeline.extract.io, "write_bytes_atomic", full)
    assert main([extract[0], str(root), *extract[1:]]) == 2
    line = _one_error_line(capsys.readouterr().err)
    match = re.fullmatch(r"error: no space left on device writing (.+): (\d+) rows saved; free space and run the same command again", line)
    assert match, line
    assert match.group(1) == str(full.failed_on)
    assert int(match.group(2)) == _saved_rows(root, "lines")
    _no_half_files(root)
    monkeypatch.undo()
    assert main([extract[0], str(root), *extract[1:]]) == 0
    assert _comparable(root / "lines.parquet") == _comparable(clean / "lines.parquet")


def test_a_full_disk_outside_a_stage_session_is_one_line(tmp_path, capsys, monkeypatch):
    """The fallback in `main`: a checkpoint write, a crawl download (here: standing in for `pipe status`)."""
    target = tmp_path / "ckpt.pt"

    def fills_up(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    import pipeline.status  # noqa: PLC0415

    monkeypatch.setattr(pipeline.status, "show_status", fills_up)
    (tmp_path / "ds").mkdir()
    assert main(["status", str(tmp_path / "ds")]) == 2
    assert _one_error_line(capsys.readouterr().err) == f"error: no space left on device writing {target}; free space and run the same command again"
