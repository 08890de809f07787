"""Learning-rate schedules and epochs: values at given steps, the same after a resume, epochs counted from the split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from pipeline.cli import main
from manifests.layout import DatasetLayout
from manifests.shards import split_keys
from tests.helpers import make_sharded_dataset
from train.checkpoint import read_checkpoint, write_payload
from train.schedule import LrSchedule, parse_milestones, steps_per_epoch

SIZE = 64


def test_step_decay_divides_after_each_milestone_as_pytorch_multisteplr_does():
    schedule = LrSchedule("step", 1e-4, milestones=(48_000,), gamma=0.1)
    assert schedule.lr_at(1) == 1e-4
    assert schedule.lr_at(48_000) == 1e-4  # the 48,000th update still uses the base rate
    assert schedule.lr_at(48_001) == pytest.approx(1e-5)
    assert schedule.lr_at(175_000) == pytest.approx(1e-5)
    two = LrSchedule("step", 1e-4, milestones=(110_000, 183_000), gamma=0.1)
    assert [two.lr_at(k) for k in (110_000, 110_001, 183_000, 183_001)] == pytest.approx([1e-4, 1e-5, 1e-5, 1e-6])
    # The same rates as torch's MultiStepLR stepped after every update.
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    reference = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[3, 5], gamma=0.5)
    ours = LrSchedule("step", 1.0, milestones=(3, 5), gamma=0.5)
    for step in range(1, 9):
        assert ours.lr_at(step) == pytest.approx(optimizer.param_groups[0]["lr"])
        optimizer.step()
        reference.step()


def test_warmup_cosine_linear_and_constant_values():
    warm = LrSchedule("constant", 1.0, warmup_steps=4)
    assert [warm.lr_at(k) for k in range(1, 7)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = LrSchedule("cosine", 1.0, warmup_steps=2, decay_steps=4)
    assert [cosine.lr_at(k) for k in range(1, 9)] == pytest.approx([0.5, 1.0, 1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0, 0.0])
    linear = LrSchedule("linear", 2.0, decay_steps=4, final_lr=1.0)
    assert [linear.lr_at(k) for k in range(1, 7)] == pytest.approx([2.0, 1.75, 1.5, 1.25, 1.0, 1.0])
    step = LrSchedule("step", 1.0, milestones=(4,), gamma=0.1, warmup_steps=2)
    assert [step.lr_at(k) for k in range(1, 7)] == pytest.approx([0.5, 1.0, 1.0, 1.0, 0.1, 0.1])
    assert LrSchedule.from_dict(cosine.to_dict()) == cosine


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kind": "exponential", "base_lr": 1.0}, "unknown LR schedule"),
        ({"kind": "step", "base_lr": 1.0, "milestones": (5, 3)}, "increasing"),
        ({"kind": "cosine", "base_lr": 1.0, "milestones": (5,)}, "belong to the step schedule"),
        ({"kind": "cosine", "base_lr": 1.0}, "needs the number of steps"),
        ({"kind": "step", "base_lr": 1.0, "gamma": 0.0}, "gamma"),
        ({"kind": "constant", "base_lr": 0.0}, "must be > 0"),
    ],
)
def test_bad_schedules_say_why(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LrSchedule(**kwargs)


def test_epochs_and_milestone_parsing():
    assert steps_per_epoch(14_000, 4) == 3_500  # chen2019's 14,000 training pairs at batch 4
    assert steps_per_epoch(10, 4) == 3  # the last step is topped up from the next pass
    assert steps_per_epoch(10, 2 * 4) == 2  # the global batch: 4 per process, 2 processes
    assert parse_milestones("48000") == (48_000,)
    assert parse_milestones("110000, 183_000") == (110_000, 183_000)
    assert parse_milestones("none") == ()
    with pytest.raises(ValueError, match="comma-separated step numbers"):
        parse_milestones("48K")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_sharded_dataset(tmp_path_factory.mktemp("schedule") / "root", 12, SIZE, "--hints", "points", "--val", "0.2", "--shard-samples", "4")


def train(root: Path, *extra: str) -> int:
    args = ["train", "draft", str(root), "--recipe", "xu2020", "--batch-size", "2", "--size", str(SIZE), "--workers", "0",
            "--width", "0.125", "--log-every", "1", "--sample-every", "100", "--deterministic", "--seed", "2", *extra]
    return main(args)


def records(root: Path, name: str) -> dict[int, dict]:
    lines = (root / "runs" / name / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, lines)}


def test_the_lr_after_a_resume_equals_the_uninterrupted_runs(dataset):
    schedule = ("--lr", "0.001", "--lr-schedule", "step", "--lr-milestones", "2,4", "--lr-gamma", "0.5", "--warmup-steps", "1")
    assert train(dataset, *schedule, "--steps", "6", "--name", "lr-straight") == 0
    assert train(dataset, *schedule, "--steps", "3", "--name", "lr-stopped") == 0
    # Resumed without repeating the schedule options: the recorded schedule is used.
    assert train(dataset, "--steps", "6", "--name", "lr-stopped", "--resume") == 0
    straight, resumed = records(dataset, "lr-straight"), records(dataset, "lr-stopped")
    expected = LrSchedule("step", 1e-3, (2, 4), 0.5, 1)
    assert [straight[k]["lr"] for k in range(1, 7)] == pytest.approx([expected.lr_at(k) for k in range(1, 7)])
    assert [resumed[k]["lr"] for k in range(1, 7)] == [straight[k]["lr"] for k in range(1, 7)]
    assert [resumed[k]["g_total"] for k in range(4, 7)] == pytest.approx([straight[k]["g_total"] for k in range(4, 7)])
    checkpoint = read_checkpoint(dataset / "runs" / "lr-stopped" / "checkpoints" / "last.pt")
    assert checkpoint["extras"]["schedule"] == expected.to_dict()
    config = json.loads((dataset / "runs" / "lr-stopped" / "config.json").read_text())
    assert config["settings"]["lr_milestones"] == [2, 4] and config["lr_schedule_resolved"] == expected.to_dict()


def test_a_resume_that_changes_the_schedule_stops_with_one_line(dataset, capsys):
    assert train(dataset, "--lr-schedule", "cosine", "--steps", "2", "--name", "lr-cosine") == 0
    capsys.readouterr()
    assert train(dataset, "--steps", "4", "--name", "lr-cosine", "--resume", "--lr", "0.01") == 2
    err = capsys.readouterr().err
    assert "--lr" in err and "resume without changing the schedule" in err and len(err.strip().splitlines()) == 1
    # Raising --steps keeps the recorded decay horizon: the LR stays at its floor after it.
    assert train(dataset, "--steps", "3", "--name", "lr-cosine", "--resume") == 0
    lrs = [records(dataset, "lr-cosine")[k]["lr"] for k in (1, 2, 3)]
    assert lrs == pytest.approx([2e-4, 1e-4, 0.0])


def train_samples(root: Path) -> int:
    return len(split_keys(DatasetLayout(root).shard_split("train")))


def test_epochs_count_the_train_splits_samples_over_the_global_batch(dataset):
    samples = train_samples(dataset)
    assert samples % 2 == 0 and samples > 2
    assert train(dataset, "--epochs", "2", "--name", "epochs") == 0
    steps = sorted(records(dataset, "epochs"))
    assert steps == list(range(1, 2 * samples // 2 + 1))
    config = json.loads((dataset / "runs" / "epochs" / "config.json").read_text())
    assert config["steps_per_epoch"] == samples // 2 and config["target_steps"] == samples and config["settings"]["epochs"] == 2


def test_show_config_resolves_epochs_to_steps_when_given_the_dataset(dataset, capsys):
    assert main(["train", "draft", str(dataset), "--recipe", "chen2019", "--show-config"]) == 0
    settings = json.loads(capsys.readouterr().out)
    assert settings["epochs"] == 15 and settings["steps"] == 15 * steps_per_epoch(train_samples(dataset), 4)
    assert not (dataset / "runs" / "chen2019-draft").exists()  # nothing trained


def test_a_checkpoint_from_before_schedules_resumes_at_its_constant_rate(dataset):
    assert train(dataset, "--steps", "2", "--name", "old-run") == 0
    path = dataset / "runs" / "old-run" / "checkpoints" / "last.pt"
    payload = read_checkpoint(path)
    # What an earlier pipe wrote: no settings, no schedule, no recipe revision.
    payload["extras"].pop("schedule")
    for key in ("settings", "recipe_revision", "generator_revision", "preset", "preset_note", "lr_schedule_resolved", "target_steps", "steps_per_epoch", "epochs", "lr", "lr_schedule",
                "lr_milestones", "lr_gamma", "warmup_steps", "crop", "flip", "label_flip", "critic_steps"):
        payload["extras"]["config"].pop(key, None)
    for group in payload["state"]["opt_g"]["param_groups"] + payload["state"]["opt_d"]["param_groups"]:
        group["lr"] = 3e-4
    write_payload(path, payload)  # re-signed: an edit, not damage
    assert train(dataset, "--steps", "4", "--name", "old-run", "--resume") == 0
    assert [records(dataset, "old-run")[k]["lr"] for k in (3, 4)] == [3e-4, 3e-4]


def test_a_checkpoint_of_an_older_recipe_revision_stops_with_one_line(dataset, tmp_path, capsys):
    """fu2018's discriminator now judges the image alone: its earlier checkpoints cannot resume, and say why."""
    args = ["train", "draft", str(dataset), "--recipe", "fu2018", "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.125", "--name", "fu-old"]
    assert main([*args, "--steps", "1"]) == 0
    path = dataset / "runs" / "fu-old" / "checkpoints" / "last.pt"
    payload = read_checkpoint(path)
    payload["extras"]["config"].pop("recipe_revision")
    payload["extras"]["config"].pop("generator_revision")
    write_payload(path, payload)  # re-signed: an edit, not damage
    capsys.readouterr()
    assert main([*args, "--steps", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "earlier pipe version of the fu2018 draft recipe" in err and "--overwrite" in err and len(err.splitlines()) == 1
    sketch = tmp_path / "sketch.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(sketch), np.full((64, 64), 255, np.uint8))
    # Its generator is unchanged (the revision changed D alone), so it still colours.
    assert main(["colorize", str(sketch), "--draft", str(path), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    payload["extras"]["config"]["recipe"] = "fu2018-cnn"  # one whose generator changed: refused in one line
    write_payload(path, payload)  # re-signed: an edit, not damage
    capsys.readouterr()
    assert main(["colorize", str(sketch), "--draft", str(path), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "earlier pipe version of the fu2018-cnn draft recipe" in err and len(err.splitlines()) == 1
