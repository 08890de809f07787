"""`pipe shard`: --verify over every file of a shard set, damaged files as one-line errors on resume,
refused option combinations, and the contact sheet without shards."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from manifests.shards import STATS_SUFFIX, member_digests
from pipeline.cli import main
from pipeline.recorded_options import options_json, parse_digested_json
from pipeline.shard.verify import verify_shard_set
from tests.helpers import make_sharded_dataset

OPTIONS = ("--hints", "points,patches", "--val", "0.3", "--shard-samples", "4")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    return make_sharded_dataset(tmp_path_factory.mktemp("checks") / "root", 16, 48, *OPTIONS)


@pytest.fixture
def root(sharded, tmp_path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(sharded, copy)
    return copy


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def flip_member_byte(tar: Path) -> None:
    """Flip one byte inside the first member's payload (the tar stays a tar of the same size)."""
    with tarfile.open(tar) as archive:
        offset = next(iter(archive)).offset_data
    data = bytearray(tar.read_bytes())
    data[offset + 100] ^= 0x01
    tar.write_bytes(bytes(data))


def test_verify_names_every_damaged_file_of_the_shard_set(root, capsys):
    assert main(["shard", str(root), "--verify"]) == 0
    assert "all good" in capsys.readouterr().err
    shards = root / "shards"
    (shards / "train" / "00000_stats.json").write_text("{garbage")
    sidecar = shards / "train" / "00001.parquet"
    sidecar.write_bytes(sidecar.read_bytes()[:100])
    flip_member_byte(shards / "val" / "00000.tar")
    (shards / "_config.json").write_text("[1, 2]")
    (shards / "train" / "notes.txt").write_text("mine")
    assert main(["shard", str(root), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    problems: dict[str, str] = {}
    for finding in verify_shard_set(root).findings:
        problems[finding.path] = problems.get(finding.path, "") + finding.problem + "; "
    assert "not valid JSON" in problems["shards/train/00000_stats.json"]
    assert "not a readable Parquet sidecar" in problems["shards/train/00001.parquet"]
    assert "differs from its sidecar digest" in problems["shards/val/00000.tar"]
    assert "not a record of options" in problems["shards/_config.json"]
    assert "not a shard file" in problems["shards/train/notes.txt"]
    for path in problems:
        assert f"problem: {path}:" in err


def test_verify_finds_a_shard_made_with_other_options(root, capsys):
    stats = root / "shards" / "train" / "00000_stats.json"
    values, _ = parse_digested_json(stats.read_text())
    values["config"]["seed"] = 7
    stats.write_text(options_json(values))  # a valid record of its own: only the options differ
    assert main(["shard", str(root), "--verify"]) == 1
    assert "shards/train/00000_stats.json: made with other options than shards/_config.json records: --seed 7, recorded 0" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["stats", "sidecar"])
def test_resume_over_a_damaged_done_marker_or_sidecar_is_one_line(root, damage, capsys):
    train = root / "shards" / "train"
    if damage == "stats":
        (train / "00001_stats.json").write_bytes(b"\x00\xff garbage")
    else:
        (train / "00001.parquet").write_bytes((train / "00001.parquet").read_bytes()[:-30])
    assert main(["shard", str(root), *OPTIONS, "--workers", "0"]) == 2
    err = one_line_error(capsys)
    assert ("00001_stats.json: not valid JSON" if damage == "stats" else "00001.parquet: not a readable Parquet sidecar") in err
    assert "--verify" in err and "--redo" in err


def test_none_cannot_be_combined_with_artifacts(root, capsys):
    assert main(["shard", str(root), "--artifacts", "none,paste"]) == 2
    assert "--artifacts: none cannot be combined with paste" in one_line_error(capsys)


def test_a_contact_sheet_without_shards_says_what_to_run(root, tmp_path, capsys):
    shutil.rmtree(root / "shards")
    assert main(["shard", str(root), "--contact-sheet", str(tmp_path / "sheet.png")]) == 2
    err = one_line_error(capsys)
    assert "no finished train shards in" in err and "pipe shard" in err and "Errno" not in err
    assert not (tmp_path / "sheet.png").exists()


def shard_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "shards").rglob("*")) if p.is_file()}


def drop_last_train_shard(root: Path) -> None:
    """Delete the last finished train shard, as if the run had been killed before it was packed."""
    last = sorted((root / "shards" / "train").glob("*.tar"))[-1]
    for path in last.parent.glob(f"{last.stem}*"):
        path.unlink()


def test_plain_pipe_shard_root_resumes_with_the_recorded_options_and_says_which(sharded, root, capsys):
    before = shard_files(sharded)
    drop_last_train_shard(root)
    assert main(["shard", str(root), "--workers", "0"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "resuming with the options recorded in" in err
    assert "--hints points,patches" in err and "--val 0.3" in err and "--shard-samples 4" in err
    assert "--seed" not in err, "the recorded seed is the default: nothing taken"
    assert shard_files(root) == before


def test_the_recorded_hints_in_another_order_are_no_change(sharded, root, capsys):
    before = shard_files(sharded)
    drop_last_train_shard(root)
    assert main(["shard", str(root), "--hints", "patches,points", "--workers", "0"]) == 0
    assert "--hints" not in capsys.readouterr().err.split("recorded in")[-1].split("\n")[0]
    assert shard_files(root) == before, "the recorded order decides the draws"


def test_a_changed_option_is_refused_before_any_warning(root, capsys):
    assert main(["shard", str(root), "--val", "0.01", "--workers", "0"]) == 2
    err = one_line_error(capsys)
    assert "--val was 0.3, now 0.01" in err and "warning" not in err


def test_a_changed_value_in_a_done_marker_that_still_parses_is_caught(root, capsys):
    """A flipped digit in a hint tally: valid JSON, same count, size and SHA-256, but not what was written."""
    stats = root / "shards" / "train" / "00000_stats.json"
    values = json.loads(stats.read_text())
    scheme = next(iter(values["hints"]))
    values["hints"][scheme] += 1
    stats.write_text(json.dumps(values, indent=1, sort_keys=True))  # its old digest kept
    assert main(["shard", str(root), "--verify"]) == 1
    assert "shards/train/00000_stats.json: damaged done-marker (its content does not match its digest)" in capsys.readouterr().err
    assert main(["shard", str(root), *OPTIONS, "--workers", "0"]) == 2
    assert "00000_stats.json: damaged done-marker" in one_line_error(capsys)


def as_written_before_digests(root: Path) -> None:
    """Rewrite the shard set's sidecars and done-markers as an older pipe did: no digests."""
    for sidecar in (root / "shards").glob("*/*.parquet"):
        pq.write_table(pq.read_table(sidecar), sidecar)
    for stats in (root / "shards").glob(f"*/*{STATS_SUFFIX}"):
        values = json.loads(stats.read_text())
        del values["_digest"]
        stats.write_text(json.dumps(values, indent=1, sort_keys=True))


def test_a_shard_set_from_before_digests_still_verifies_resumes_and_loads(sharded, root, capsys):
    as_written_before_digests(root)
    assert main(["shard", str(root), "--verify"]) == 0
    assert "all good" in capsys.readouterr().err
    drop_last_train_shard(root)
    assert main(["shard", str(root), "--workers", "0"]) == 0
    tars = sorted((root / "shards" / "train").glob("*.tar"))
    assert tars[-1].read_bytes() == (sharded / tars[-1].relative_to(root)).read_bytes()
    digests = member_digests(tars[0].with_suffix(".parquet"))
    assert len(digests) == 4 and all(len(d["color.png"]) == 64 for d in digests.values())


def test_a_changed_histogram_is_caught_by_verify_and_resume(tmp_path, capsys):
    """A count of shards/_histogram.npy changed: still a valid histogram, but not the one the shards were drawn with."""
    options = ("--hints", "histogram", "--val", "0", "--shard-samples", "4", "--workers", "0")
    root = make_sharded_dataset(tmp_path / "root", 8, 48, *options)
    before = shard_files(root)
    path = root / "shards" / "_histogram.npy"
    counts = np.load(path)
    counts[int(np.argmax(counts))] -= 1
    np.save(path, counts)
    capsys.readouterr()
    assert main(["shard", str(root), "--verify"]) == 1
    assert "shards/_histogram.npy: differs from the histogram the shards' done-markers record" in capsys.readouterr().err
    drop_last_train_shard(root)
    assert main(["shard", str(root), *options]) == 2
    assert "_histogram.npy differs from the histogram the finished shards were drawn with" in one_line_error(capsys)
    # With no finished shard to vouch for it, the histogram is counted again: the same shards.
    for path in (root / "shards" / "train").glob("*"):
        path.unlink()
    assert main(["shard", str(root), *options]) == 0
    assert shard_files(root) == before
