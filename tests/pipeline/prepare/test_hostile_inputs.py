"""Inputs that once ended or stalled `pipe prepare`: a file name that is not UTF-8, a FIFO, hidden files,
a huge file that is not an image, an empty folder, a source that holds the dataset's own outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main
from pipeline.prepare.decode import max_file_bytes
from tests.helpers import picture, run_prepare, save_rgb


def _error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One real `pipe prepare` process over a folder of hostile entries; a FIFO must not block it."""
    folder = tmp_path_factory.mktemp("hostile")
    source = folder / "src"
    source.mkdir()
    save_rgb(source / "good.png", picture(0))
    save_rgb(source / "..png", picture(1))
    save_rgb(source / "tmp.png", picture(2))
    os.rename(source / "tmp.png", os.fsencode(source) + b"/bad\xffbyte.png")  # a name OpenCV could not write
    os.mkfifo(source / "pipe.png")
    (source / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    command = [sys.executable, "-m", "pipeline.cli", "prepare", str(source), str(folder / "root"), "--workers", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    rows = pq.read_table(folder / "root" / "prepared.parquet").to_pylist()
    return {Path(row["source"]).name: row for row in rows}, command


def test_every_entry_of_the_source_gets_one_row(hostile_run):
    rows, _ = hostile_run
    assert set(rows) == {"good.png", "..png", "bad\\xffbyte.png", "pipe.png", ".DS_Store"}


def test_a_name_that_is_not_utf8_is_recorded_escaped(hostile_run):
    rows, command = hostile_run
    assert rows["bad\\xffbyte.png"]["status"] == "ok"
    again = subprocess.run(command, capture_output=True, text=True, timeout=120)  # resumes: the id is stable
    assert again.returncode == 0 and "already in the ledger" in again.stderr, again.stderr


def test_a_fifo_is_rejected_without_being_opened_for_a_writer(hostile_run):
    rows, _ = hostile_run
    fifo = rows["pipe.png"]
    assert (fifo["status"], fifo["reason"]) == ("rejected", "not_a_regular_file")
    assert "FIFO" in fifo["detail"]


def test_hidden_files_are_recorded_too(hostile_run):
    rows, _ = hostile_run
    assert rows["..png"]["status"] == "ok"
    assert (rows[".DS_Store"]["status"], rows[".DS_Store"]["reason"]) == ("rejected", "decode_error")


def test_a_huge_non_image_is_judged_from_its_header_not_read_whole(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    max_pixels = 1_000_000
    size = 256 << 20  # sparse: costs no disk; read whole it would be 256 MB of memory
    with open(source / "movie.png", "wb") as handle:
        handle.write(b"\x1aE\xdf\xa3 this is a video container, not a picture")
        handle.truncate(size)
    assert size > max_file_bytes(max_pixels)
    tracemalloc.start()
    try:
        _, table = run_prepare(source, tmp_path / "root", max_pixels=max_pixels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    row = table.to_pylist()[0]
    assert (row["status"], row["reason"], row["source_bytes"]) == ("rejected", "decode_error", size)
    assert peak < 32 << 20, f"{peak:,} bytes allocated"


def test_an_empty_source_is_one_line_and_creates_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["prepare", str(tmp_path / "empty"), str(tmp_path / "root")]) == 2
    assert _error_line(capsys.readouterr().err) == f"error: no images found in {tmp_path / 'empty'}"
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("inside", ["", "prepared", ".pipe"])
def test_a_source_holding_the_dataset_s_own_outputs_is_refused(tmp_path, capsys, inside):
    source, root = tmp_path / "src", tmp_path / "ds"
    source.mkdir()
    save_rgb(source / "a.png", picture(0))
    assert main(["prepare", str(source), str(root), "--workers", "0"]) == 0
    before = pq.read_table(root / "prepared.parquet").num_rows
    capsys.readouterr()
    assert main(["prepare", str(root / inside), str(root), "--workers", "0"]) == 2
    line = _error_line(capsys.readouterr().err)
    assert line.startswith(f"error: {(root / inside).resolve()} is ") and "would be read as inputs" in line
    assert pq.read_table(root / "prepared.parquet").num_rows == before


def test_a_dataset_inside_its_source_does_not_ingest_itself(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    save_rgb(source / "a.png", picture(0))
    for _ in range(2):
        _, table = run_prepare(source, source / "ds")
    assert [Path(row["source"]).name for row in table.to_pylist()] == ["a.png"]


def test_a_root_that_is_a_file_is_one_line_for_a_later_stage(tmp_path, capsys):
    root = tmp_path / "ds"
    root.write_text("not a folder")
    assert main(["extract", str(root), "--method", "xdog"]) == 2
    assert _error_line(capsys.readouterr().err) == f"error: {root} is a file, not a folder"
