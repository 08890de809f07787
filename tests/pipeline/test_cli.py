"""The `pipe` command line: what --help offers, one-line errors, status, the demo."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("crawl", "prepare", "extract", "shard", "train", "colorize", "eval", "weights", "status", "demo"):
        assert f" {command} " in out


def test_missing_cascade_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    code = main(["prepare", str(tmp_path / "src"), str(tmp_path / "root"), "--crop", "face", "--face-cascade", str(tmp_path / "nope.xml")])
    err = capsys.readouterr().err
    assert code == 2
    assert "face cascade not found" in err and "lbpcascade_animeface" in err and "Traceback" not in err


def test_bad_choice_and_missing_source_are_one_line(tmp_path, capsys):
    assert main(["prepare", str(tmp_path), str(tmp_path / "root"), "--crop", "square"]) == 2
    assert "--crop must be one of: center, pad, face" in capsys.readouterr().err
    assert main(["prepare", str(tmp_path / "absent"), str(tmp_path / "root")]) == 2
    assert "source not found" in capsys.readouterr().err


def test_status_exits_non_zero_on_an_unreadable_ledger(tmp_path, capsys):
    (tmp_path / "prepared.parquet").write_bytes(b"not parquet at all")
    assert main(["status", str(tmp_path)]) == 1
    assert "cannot read ledger" in capsys.readouterr().err


def test_demo_crawls_the_fixture_board_and_every_post_lands_where_expected(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "demo"), "--images", "4", "--workers", "0"]) == 0
    expected = json.loads((tmp_path / "demo" / "expected.json").read_text())
    dataset = tmp_path / "demo" / "dataset"
    raw = {row["post"]: row["reason"] or row["status"] for row in pq.read_table(dataset / "raw.parquet").to_pylist()}
    prepared = {row["source"]: row["reason"] or row["status"] for row in pq.read_table(dataset / "prepared.parquet").to_pylist()}
    assert raw == {post: outcome["crawl"] for post, outcome in expected.items()}
    assert prepared == {post: outcome["prepare"] for post, outcome in expected.items() if outcome["prepare"]}
    assert {"grayscale", "aspect_ratio", "near_duplicate"} <= set(prepared.values())
    ok_keys = {row["key"] for row in pq.read_table(dataset / "prepared.parquet").to_pylist() if row["status"] == "ok"}
    lines = pq.read_table(dataset / "lines.parquet").to_pylist()
    assert {(row["method"], row["key"]) for row in lines} == {(m, k) for m in ("xdog", "dilate", "canny", "highpass", "gray") for k in ok_keys}
    assert all(row["status"] == "ok" and (dataset / row["path"]).is_file() for row in lines)
    shards = pq.read_table(dataset / "shards.parquet").to_pylist()
    assert {row["key"] for row in shards} == ok_keys and all(row["status"] == "ok" for row in shards)
    assert main(["shard", str(dataset), "--verify"]) == 0
    assert main(["status", str(dataset)]) == 0
    assert main(["demo", str(tmp_path / "demo"), "--images", "4", "--workers", "0"]) == 0
    assert "nothing to do" in capsys.readouterr().err
