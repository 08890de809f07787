"""Options are recorded with each ledger: a resume with a changed option is refused with one line
naming it, its recorded value and the new one; `--redo` starts over; new extraction methods are new work."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from pipeline.cli import main
from tests.helpers import make_prepared_dataset, picture, save_rgb


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    return " ".join(err.split())


def test_prepare_resume_with_a_changed_filter_is_refused_and_redo_starts_over(tmp_path, capsys):
    src, root = tmp_path / "src", tmp_path / "root"
    for seed in range(3):
        save_rgb(src / f"{seed}.png", picture(seed, 700, 600))
    assert main(["prepare", str(src), str(root), "--workers", "0"]) == 0
    assert json.loads((root / ".pipe" / "options" / "prepared.json").read_text())["--min-side"] == 512
    capsys.readouterr()
    assert main(["prepare", str(src), str(root), "--workers", "0", "--min-side", "400"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--min-side was 512, now 400" in err and "--redo" in err
    assert "nothing to do" not in err
    # The same options resume as before; --redo starts over with the new ones.
    assert main(["prepare", str(src), str(root), "--workers", "0"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert main(["prepare", str(src), str(root), "--workers", "0", "--min-side", "650", "--redo"]) == 0
    rows = pq.read_table(root / "prepared.parquet").to_pylist()
    assert [row["reason"] for row in rows] == ["too_small"] * 3
    assert not list((root / "prepared").rglob("*.png"))
    assert json.loads((root / ".pipe" / "options" / "prepared.json").read_text())["--min-side"] == 650


def test_extract_adds_methods_freely_but_refuses_changed_method_options(tmp_path, capsys):
    root = tmp_path / "root"
    make_prepared_dataset(root, 3, size=64)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["extract", str(root), "--method", "xdog,dilate", "--workers", "0"]) == 0  # a new method is new work
    assert {row["method"] for row in pq.read_table(root / "lines.parquet").to_pylist()} == {"xdog", "dilate"}
    capsys.readouterr()
    assert main(["extract", str(root), "--method", "xdog", "--set", "xdog.sigma=0.3", "--workers", "0"]) == 2
    assert "--set xdog.sigma was 0.3,0.4,0.5, now 0.3" in _one_line(capsys.readouterr().err)
    assert main(["extract", str(root), "--method", "dilate", "--size", "32", "--workers", "0"]) == 2
    assert "--size for dilate was none, now 32" in _one_line(capsys.readouterr().err)
    assert main(["extract", str(root), "--method", "dilate", "--seed", "3", "--workers", "0"]) == 2
    assert "--seed for dilate was 0, now 3" in _one_line(capsys.readouterr().err)
    assert main(["extract", str(root), "--method", "dilate", "--size", "32", "--redo", "--workers", "0"]) == 0
    rows = {row["method"]: row for row in pq.read_table(root / "lines.parquet").to_pylist()}
    assert json.loads(rows["dilate"]["params"])["size"] == 32 and json.loads(rows["xdog"]["params"])["size"] is None
    # After the redo the new value is the recorded one, and xdog's record is untouched.
    assert main(["extract", str(root), "--method", "xdog,dilate", "--size", "32", "--workers", "0"]) == 2
    assert "--size for xdog was none, now 32" in _one_line(capsys.readouterr().err)
    assert main(["extract", str(root), "--method", "dilate", "--size", "32", "--workers", "0"]) == 0


def test_shard_names_the_changed_option(tmp_path, capsys):
    root = tmp_path / "root"
    make_prepared_dataset(root, 6, size=64)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    before = (root / "shards" / "_config.json")
    assert main(["shard", str(root), "--hints", "points", "--val", "0.5", "--workers", "0"]) == 0
    recorded = before.read_text()
    capsys.readouterr()
    assert main(["shard", str(root), "--hints", "blur", "--val", "0.5", "--workers", "0"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--hints was points, now blur" in err and "--redo" in err
    assert main(["shard", str(root), "--hints", "points", "--val", "0.3", "--jitter", "1", "--workers", "0"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--jitter was 0.7, now 1.0" in err and "--val was 0.5, now 0.3" in err
    assert before.read_text() == recorded
    assert main(["shard", str(root), "--hints", "blur", "--val", "0.5", "--redo", "--workers", "0"]) == 0
    assert json.loads(before.read_text())["hints"] == ["blur"]


def test_stages_built_on_outputs_that_a_redo_replaced_refuse_to_resume_until_redone(tmp_path, capsys):
    """prepare --redo remakes the images: extract and shard must not say "nothing to do" over stale outputs."""
    src, root = tmp_path / "src", tmp_path / "root"
    for seed in range(6):
        save_rgb(src / f"{seed}.png", picture(seed, 700, 600))
    assert main(["prepare", str(src), str(root), "--workers", "0", "--size", "128"]) == 0
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--val", "0", "--workers", "0"]) == 0
    assert main(["prepare", str(src), str(root), "--workers", "0", "--size", "96", "--redo"]) == 0
    warning = _one_line(capsys.readouterr().err)
    assert "lines.parquet, shards.parquet were made from the outputs this --redo replaces: run pipe extract, pipe shard with --redo" in warning
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "`pipe prepare --redo` has since replaced" in err and "add --redo" in err
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0", "--redo"]) == 0
    assert {row["width"] for row in pq.read_table(root / "lines.parquet").to_pylist()} == {96}
    capsys.readouterr()
    assert main(["shard", str(root), "--val", "0", "--workers", "0"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "`pipe prepare --redo` and `pipe extract --redo` have since replaced" in err
    assert main(["shard", str(root), "--val", "0", "--workers", "0", "--redo"]) == 0
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0  # in step again: a plain resume
    assert "nothing to do" in capsys.readouterr().err
