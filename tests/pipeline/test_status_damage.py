"""`pipe status` on a path that is a file, and on a dataset whose job records are damaged."""

from __future__ import annotations

from pipeline.cli import main
from pipeline.recorded_options import options_json


def test_status_of_a_file_says_it_is_a_file_not_a_missing_folder(tmp_path, capsys):
    path = tmp_path / "prepared.parquet"
    path.write_bytes(b"PAR1")
    assert main(["status", str(path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"{path} is a file, not a dataset folder" in err and "not found" not in err


def test_a_truncated_job_record_is_shown_as_damaged_not_left_out(tmp_path, capsys):
    root = tmp_path / "dataset"
    good = {"job": "job.toml", "dataset": str(root), "started": "x", "stages": [{"name": "crawl", "status": "done"}], "exit_code": 0}
    (root / "jobs" / "20260101-000000").mkdir(parents=True)
    (root / "jobs" / "20260101-000000" / "summary.json").write_text(options_json(good))
    (root / "jobs" / "20260102-000000").mkdir(parents=True)
    (root / "jobs" / "20260102-000000" / "summary.json").write_text(options_json(good)[:40])  # cut short
    main(["status", str(root)])
    out = " ".join(capsys.readouterr().err.split())
    assert "20260101-000000" in out and "crawl done" in out
    assert "20260102-000000" in out and "damaged" in out and "jobs/20260102-000000/summary.json is damaged" in out
