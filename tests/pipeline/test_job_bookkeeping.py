"""`pipe run`'s own bookkeeping: values and stage references checked before anything runs, damaged job
state refused in one line (never taken as a first run), a failed or unchanged train stage not counted
as progress, and an interruption that names the command that resumes the job."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import pytest

from manifests.layout import DatasetLayout
from pipeline.cli import main
from pipeline.errors import Interrupted
from pipeline.job import run as job_run
from pipeline.job.spec import read_job
from pipeline.recorded_options import options_json
from tests.pipeline.test_job import write_job

UNREACHABLE = "http://127.0.0.1:1"


@pytest.fixture(autouse=True)
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPE_WEIGHTS", str(tmp_path / "no-weights"))


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return " ".join(err.split())


REFINE = '\n[train.refine]\nrecipe = "xu2020"\nsteps = 2\nsize = 64\ndevice = "cpu"\ndrafts-from = "train.drfat"\n'


@pytest.mark.parametrize(
    ("edit", "names"),
    [
        (lambda t: t + REFINE, ["[train.refine]", "drafts-from", "train.drfat", "no train stage"]),
        (lambda t: t.replace('hints = "none"', 'hints = "none"\ndraft = "train.drfat"'), ["[eval]", "draft", "train.drfat"]),
        (lambda t: t.replace('hints = "none"', 'hints = "none,cfdi"'), ["[eval]", "hints", "cfdi"]),
        (lambda t: t.replace('recipe = "xu2020"', 'recipe = "xu2021"'), ["[train.draft]", "recipe", "xu2021"]),
        (lambda t: t.replace('hints = "points"', 'hints = "pionts"'), ["[shard]", "hints", "pionts"]),
        (lambda t: t.replace('method = "xdog,dilate"', 'method = "xdgo"'), ["[extract]", "method", "xdgo"]),
        (lambda t: t.replace("[train.draft]", "[train.draft]\nlr-schedule = \"cosinus\""), ["[train.draft]", "lr-schedule", "cosinus"]),
    ],
)
def test_bad_values_and_stage_references_are_refused_before_anything_runs(tmp_path, capsys, edit, names):
    job = write_job(tmp_path, UNREACHABLE)
    job.write_text(edit(job.read_text()))
    for argv in (["run", str(job), "--dry-run"], ["run", str(job)]):
        assert main(argv) == 2
        err = _one_line(capsys)
        for name in names:
            assert name in err, err
    assert not (tmp_path / "dataset").exists()


def _fake_checkpoint(path: Path, step: int) -> None:
    """What `pipe status` reads of a torch checkpoint: the payload pickle of its zip (no tensors needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("last/data.pkl", pickle.dumps({"step": step}))
    path.write_bytes(buffer.getvalue())


def _job_with_state(tmp_path, state_text: str):
    job = write_job(tmp_path, UNREACHABLE)
    layout = DatasetLayout(tmp_path / "dataset")
    state = layout.job_state("train.draft")
    state.parent.mkdir(parents=True)
    state.write_text(state_text)
    _fake_checkpoint(layout.run_checkpoint("xu2020-draft"), 2)
    return job, state


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (options_json({"target": 2, "done": True, "shards": []})[:25], "not valid JSON"),
        ('{"target": "abc", "done": false, "shards": []}', "'target' is 'abc'"),  # an older pipe's file: no digest, bad value
        (options_json({"target": 20, "done": True, "shards": []}).replace("20", "21"), "does not match its digest"),
    ],
)
def test_damaged_job_state_is_one_line_and_never_a_first_run(tmp_path, capsys, text, why):
    job, state = _job_with_state(tmp_path, text)
    assert main(["run", str(job), "--dry-run", "--only", "train.draft"]) == 2
    err = _one_line(capsys)
    assert f"job state {state} is damaged" in err and why in err and "first run" not in err
    assert main(["run", str(job), "--only", "train.draft"]) == 1
    err = _one_line(capsys)
    assert "train.draft: failed: job state" in err and why in err and "first run" not in err and "start" not in err.split("failed")[0]
    assert state.read_text() == text  # left as it was, for the user to look at or restore


def test_a_run_that_reached_its_target_in_a_failed_job_run_is_not_trained_again(tmp_path, capsys):
    # The last job run set the target 2, the trainer saved step 2, and the stage still failed (after the checkpoint).
    job, state = _job_with_state(tmp_path, options_json({"target": 2, "done": False, "shards": []}))
    assert main(["run", str(job), "--only", "train.draft"]) == 0
    err = _one_line(capsys)
    assert "train.draft: nothing to do: xu2020-draft already reached step 2" in err and "steps 3-2" not in err
    assert json.loads(state.read_text())["done"] is True


def test_a_training_that_trained_nothing_is_not_reported_as_steps_21_20(tmp_path):
    job = read_job(write_job(tmp_path, UNREACHABLE))
    status, what = job_run._what_it_did(job.stage("train.draft"), {"first_step": 20, "last_step": 20, "run_dir": "runs/xu2020-draft"})
    assert (status, what) == ("nothing to do", "runs/xu2020-draft is already at step 20")


def test_ctrl_c_in_a_stage_says_to_run_the_job_again_not_the_stage_command(tmp_path, capsys, monkeypatch):
    job_file = write_job(tmp_path, UNREACHABLE)

    def interrupted_training(command, argv):  # what a training session raises on Ctrl-C, after saving its checkpoint
        raise Interrupted("interrupted: checkpoint saved at step 1; continue with --resume")

    monkeypatch.setattr(job_run, "_invoke", interrupted_training)
    assert main(["run", str(job_file), "--only", "train.draft"]) == 2
    err = _one_line(capsys)
    assert "checkpoint saved at step 1" in err and f"run `pipe run {job_file}` again to resume" in err
    assert "--resume" not in err.replace("to resume", "")
