"""How a training run stops without losing its steps: SIGTERM to its whole process group (loader
workers included), and a full disk while it writes a checkpoint or its metrics."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pipeline.cli import main
from tests.helpers import make_sharded_dataset
from train.checkpoint import load_checkpoint

SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_sharded_dataset(tmp_path_factory.mktemp("stops") / "root", 12, SIZE, "--hints", "patches", "--val", "0", "--shard-samples", "3")


def train_args(root: Path, name: str, *extra: str) -> list[str]:
    return ["train", "draft", str(root), "--recipe", "xu2020", "--batch-size", "2", "--size", str(SIZE), "--width", "0.25",
            "--log-every", "1", "--name", name, *extra]


def logged_steps(run: Path) -> list[int]:
    path = run / "metrics.jsonl"
    return [json.loads(line)["step"] for line in path.read_text().splitlines()] if path.is_file() else []


def saved_step(run: Path) -> int:
    return load_checkpoint(run / "checkpoints" / "last.pt", {}, restore_random=False)["step"]


@pytest.mark.slow
def test_sigterm_to_the_process_group_saves_a_checkpoint_and_resumes_with_loader_workers(dataset):
    """`systemctl stop` and `timeout` signal every process of the group, the loader workers too."""
    name = "group"
    command = [sys.executable, "-m", "pipeline.cli", *train_args(dataset, name, "--workers", "2")]
    run = dataset / "runs" / name
    process = subprocess.Popen([*command, "--steps", "400"], start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(logged_steps(run)) < 3 and process.poll() is None:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err[-3000:]
    assert "Traceback" not in err and "killed by signal" not in err
    step = saved_step(run)
    assert 3 <= step < 400
    assert f"interrupted: checkpoint saved at step {step}; continue with --resume" in " ".join(err.split())
    result = subprocess.run([*command, "--steps", str(step + 2), "--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert saved_step(run) == step + 2
    assert logged_steps(run) == list(range(1, step + 3))


def out_of_space(args: list[str], capsys) -> str:
    """Run `pipe` into a full disk; returns what names the file: the OSError's filename on this branch
    alone (pipeline/cli.py does not print ENOSPC yet), or the one line pipe prints for it."""
    try:
        code = main(args)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
        return str(exc.filename)
    assert code != 0
    err = " ".join(capsys.readouterr().err.split())
    # Where stderr is not a terminal the progress bar leaves its last frame before the error line.
    assert "error: " in err and "Traceback" not in err, err
    line = err[err.index("error: "):]
    assert "no space left on device" in line.lower(), err
    return line


def test_a_full_disk_at_a_checkpoint_names_it_and_resume_continues_from_the_last_good_one(dataset, monkeypatch, capsys):
    name = "full-checkpoint"
    run = dataset / "runs" / name
    args = train_args(dataset, name, "--workers", "0", "--checkpoint-every", "2", "--steps", "6")
    real_save, saves = torch.save, []

    def save_until_the_disk_fills(payload, path, *more, **options):
        saves.append(path)
        if len(saves) == 2:  # the checkpoint of step 4
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(payload, path, *more, **options)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    named = out_of_space(args, capsys)
    monkeypatch.undo()
    assert str(run / "checkpoints" / "last.pt") in named
    assert saved_step(run) == 2  # the last good checkpoint, intact
    assert list((run / "checkpoints").iterdir()) == [run / "checkpoints" / "last.pt"]  # no half-written temporary
    assert main([*args, "--resume"]) == 0
    assert saved_step(run) == 6 and logged_steps(run) == [1, 2, 3, 4, 5, 6]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full (every write: ENOSPC)")
def test_a_full_disk_under_metrics_jsonl_names_the_file(dataset, capsys):
    name = "full-metrics"
    run = dataset / "runs" / name
    run.mkdir(parents=True)
    (run / "metrics.jsonl").symlink_to("/dev/full")  # a real ENOSPC from the kernel, with no file name in it
    named = out_of_space(train_args(dataset, name, "--workers", "0", "--steps", "2"), capsys)
    assert str(run / "metrics.jsonl") in named
