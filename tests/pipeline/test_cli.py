"""The `pipe` command line: what --help offers, one-line errors, status, the demo."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

from manifests.layout import DatasetLayout
from pipeline.cli import main
from tests.helpers import make_prepared_dataset, picture, save_rgb


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("crawl", "prepare", "extract", "shard", "train", "colorize", "eval", "weights", "run", "status", "demo"):
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


@pytest.mark.slow
def test_demo_runs_the_whole_chain_and_every_post_lands_where_expected(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PIPE_WEIGHTS", str(tmp_path / "no-weights"))  # no Inception file: FID reads n/a
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
    # The draft, its refinement trained on its drafts, and one report scoring both.
    for run in ("xu2020-draft", "xu2020-refine"):
        assert (dataset / "runs" / run / "checkpoints" / "last.pt").is_file()
    (report,) = list((dataset / "reports").glob("*/report.json"))
    scores = json.loads(report.read_text())
    assert scores["samples"] >= 1
    html = (report.parent / "report.html").read_text()
    assert "n/a: pt_inception-2015-12-05-6726825d.pth missing, `pipe weights fetch inception`" in html
    assert main(["status", str(dataset)]) == 0
    capsys.readouterr()
    assert main(["demo", str(tmp_path / "demo"), "--images", "4", "--workers", "0"]) == 0
    err = capsys.readouterr().err
    for stage in ("prepare", "extract", "shard", "train.draft", "train.refine", "eval"):
        assert f"{stage}: nothing to do" in err
    assert len(list((dataset / "reports").glob("*/report.json"))) == 1


def test_demo_prints_the_job_it_runs_and_the_job_file_is_valid(tmp_path, capsys):
    assert main(["demo", "--print-job"]) == 0
    text = capsys.readouterr().out
    job = tmp_path / "job.toml"
    job.write_text(text.replace("http://127.0.0.1:PORT", "http://127.0.0.1:1"))
    assert main(["run", str(job), "--dry-run"]) == 0
    plan = " ".join(capsys.readouterr().err.split())
    for stage in ("crawl", "prepare", "extract", "shard", "train.draft", "train.refine", "eval"):
        assert f" {stage} " in plan
    assert not (tmp_path / "dataset").exists()  # a dry run writes nothing


def test_a_stage_that_refuses_to_start_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "does" / "not" / "exist"
    assert main(["extract", str(missing), "--workers", "0"]) == 2
    assert main(["shard", str(missing), "--lines", "xdog", "--workers", "0"]) == 2
    assert main(["shard", str(missing), "--workers", "0"]) == 2
    assert main(["prepare", str(tmp_path / "missing_dir"), str(tmp_path / "new_root")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "source not found" in err
    assert not (tmp_path / "does").exists() and not (tmp_path / "new_root").exists()
    # An existing folder that is not a dataset (yet) is left as it was.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["extract", str(empty), "--workers", "0"]) == 2
    assert main(["shard", str(empty), "--lines", "xdog", "--workers", "0"]) == 2
    assert list(empty.iterdir()) == []


def test_help_says_what_the_demo_does(capsys):
    assert main(["--help"]) == 0
    top = " ".join(capsys.readouterr().out.split())
    assert "extracts line art and packs shards, trains and evaluates" in top
    assert main(["demo", "--help"]) == 0
    demo = " ".join(capsys.readouterr().out.split())
    assert "crawl, prepare, extract line art, pack shards, train, evaluate" in demo
    assert "and prepare the result" not in demo


def test_progress_rate_agrees_with_the_summary_and_one_table_on_a_first_run(tmp_path, capsys):
    src, root = tmp_path / "src", tmp_path / "root"
    for seed in range(12):
        save_rgb(src / f"{seed}.png", picture(seed, 640, 600))
    assert main(["prepare", str(src), str(root), "--workers", "2"]) == 0
    err = capsys.readouterr().err
    bar = float(re.search(r"([\d,]+\.\d) it/s", err).group(1).replace(",", ""))
    rates = re.search(r"\(([\d,]+\.\d)/s(?:, ([\d,]+\.\d)/s until the last input)?\)", err)
    # The bar's rate is the summary's over the same time (from the start to the last input).
    summary = float((rates.group(2) or rates.group(1)).replace(",", ""))
    assert abs(bar - summary) <= 0.15 * summary + 0.2, err
    # A first run: this run is the whole ledger, one table says so.
    assert "prepared: this run (the whole ledger)" in err
    assert err.count("status") == 1 and "prepared: whole ledger" not in err
    save_rgb(src / "new.png", picture(99, 640, 600))
    assert main(["prepare", str(src), str(root), "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "prepared: this run" in err and "prepared: whole ledger" in err


def test_progress_lines_are_not_cut_in_logs(tmp_path, capsys):
    root = tmp_path / "root"
    make_prepared_dataset(root, 2, size=64)
    methods = "xdog,dilate,canny,highpass,gray"
    assert main(["extract", str(root), "--method", methods, "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert f"extract {methods} on cpu" in err and "…" not in err
    line = next(line for line in err.splitlines() if line.startswith(f"extract {methods}"))
    assert "10/10" in line and "it/s" in line


def test_status_shows_runs_and_reports(tmp_path, capsys):
    import torch

    from train.checkpoint import save_checkpoint

    make_prepared_dataset(tmp_path, 1, size=64)
    layout = DatasetLayout(tmp_path)
    layout.run("xu-draft").mkdir(parents=True)
    layout.run_config("xu-draft").write_text(json.dumps({"recipe": "xu2020", "stage": "draft", "steps": 40}))
    layout.run_metrics("xu-draft").write_text("".join(json.dumps({"step": s, "loss_g": 1.0 / s, "images_per_second": 12.5}) + "\n" for s in (10, 20, 30)))
    save_checkpoint(layout.run_checkpoint("xu-draft"), 20, {"g": torch.nn.Linear(2, 2)})
    layout.run("empty").mkdir(parents=True)
    layout.report("xu-draft").mkdir(parents=True)
    report = {
        "samples": 17,
        "settings": {
            "none": {"label": "FID", "samples": 17, "fid": 123.456, "psnr": {"mean": 18.25}},
            "cfid": {"label": "C-FID", "samples": 17, "fid": None, "not_computed": {"fid": "no Inception weights"}, "psnr": {"mean": 21.5}},
        },
    }
    layout.report_json("xu-draft").write_text(json.dumps(report))
    (layout.reports / ".cache").mkdir()
    assert main(["status", str(tmp_path)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "xu-draft" in err and "xu2020 draft" in err and "30 / 40" in err
    assert "runs/xu-draft/checkpoints/last.pt (step 20)" in err
    assert "loss_g 0.03333" in err and "images_per_second 12.5" in err
    assert "empty" in err and "none yet" in err
    assert "17" in err and "none (FID)" in err and "123.46" in err and "18.25" in err
    assert "cfid (C-FID)" in err and "n/a: no Inception weights" in err and "21.5" in err
    assert ".cache" not in err
