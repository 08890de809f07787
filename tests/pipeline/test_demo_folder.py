"""`pipe demo DIR` never replaces what the user keeps in DIR (finding #6): a job.toml it did not write
(or one edited since) is refused in one line, as is a folder holding what the demo writes without its
job file; its own unedited job file (recognized by its last line, a SHA-256 of the lines above) is
run again. The demo's full run, and its rerun in the same folder, is tests/pipeline/test_cli.py's
slow test."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.demo.run import check_demo_folder, demo_job, is_demo_job, marked
from pipeline.errors import PipeError

OWN_JOB = 'dataset = "my-dataset"\n[prepare]\nsource = "my-drawings"\n'


def refused(capsys, folder: Path, *extra: str) -> str:
    capsys.readouterr()
    assert main(["demo", str(folder), "--images", "4", "--workers", "0", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return " ".join(err.split())


def test_a_job_file_of_the_users_own_is_kept(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text(OWN_JOB)
    err = refused(capsys, tmp_path)
    assert f"{job} is not the job file pipe demo wrote (yours, or edited since): pass --overwrite to replace it" in err
    assert job.read_text() == OWN_JOB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.toml"]  # no expected.json, no dataset/


def test_an_edited_demo_job_is_kept_and_an_unedited_one_is_the_demos(tmp_path, capsys):
    job = tmp_path / "job.toml"
    written = marked(demo_job("http://127.0.0.1:8000", 0, 1))
    job.write_text(written)
    assert is_demo_job(job)
    check_demo_folder(tmp_path, overwrite=False)  # the demo's own: replaced on the next run
    edited = written.replace("steps = ", "steps = 1", 1)
    assert edited != written
    job.write_text(edited)
    assert not is_demo_job(job)
    assert "is not the job file pipe demo wrote" in refused(capsys, tmp_path)
    assert job.read_text() == edited
    check_demo_folder(tmp_path, overwrite=True)  # --overwrite: the user said so


def test_a_folder_with_the_demos_outputs_but_no_demo_job_is_refused(tmp_path, capsys):
    (tmp_path / "dataset").mkdir()
    (tmp_path / "expected.json").write_text("{}")
    err = refused(capsys, tmp_path)
    assert f"{tmp_path} holds expected.json, dataset but no job file of pipe demo: pass --overwrite" in err
    assert (tmp_path / "expected.json").read_text() == "{}" and not (tmp_path / "job.toml").exists()
    with pytest.raises(PipeError):
        check_demo_folder(tmp_path, overwrite=False)
