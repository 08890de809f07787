"""Stage summaries (ROOT/.pipe/summaries/<name>.json) carry a digest: a damaged one is named by
`pipe verify` and by the job runner's reader, never read as if it were good."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.recorded_options import DamagedRecord, read_digested_json
from tests.helpers import picture, save_rgb


@pytest.fixture()
def prepared_root(tmp_path) -> Path:
    source, root = tmp_path / "src", tmp_path / "root"
    source.mkdir()
    for index in range(2):
        save_rgb(source / f"{index}.png", picture(index))
    assert main(["prepare", str(source), str(root), "--workers", "0"]) == 0
    return root


def test_a_summary_is_written_with_its_digest(prepared_root):
    path = prepared_root / ".pipe" / "summaries" / "prepared.json"
    assert "_digest" in json.loads(path.read_text())
    summary = read_digested_json(path)
    assert summary["name"] == "prepared" and summary["planned"] == 2


def test_verify_names_a_summary_whose_counts_were_changed(prepared_root, capsys):
    path = prepared_root / ".pipe" / "summaries" / "prepared.json"
    # One digit changed (bit rot in a count): still valid JSON, so only the digest can tell.
    path.write_text(path.read_text().replace("\"planned\": 2", "\"planned\": 3"))
    with pytest.raises(DamagedRecord):
        read_digested_json(path)
    capsys.readouterr()
    assert main(["verify", str(prepared_root)]) == 1
    out = capsys.readouterr()
    damaged = [line for line in (out.out + out.err).splitlines() if "damaged:" in line]
    assert damaged and all(str(path) in line for line in damaged), damaged


def test_verify_names_a_record_that_is_not_a_summary(prepared_root, capsys):
    """An options record (digested, so it passes the digest check) copied over a summary is not one."""
    summary = prepared_root / ".pipe" / "summaries" / "prepared.json"
    summary.write_bytes((prepared_root / ".pipe" / "options" / "prepared.json").read_bytes())
    capsys.readouterr()
    assert main(["verify", str(prepared_root)]) == 1
    out = capsys.readouterr()
    damaged = [line for line in (out.out + out.err).splitlines() if "damaged:" in line]
    assert len(damaged) == 1 and str(summary) in damaged[0] and "not a stage summary" in damaged[0], damaged
