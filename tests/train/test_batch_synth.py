"""`pipe train --synth device`: hints and drafts drawn per batch from the shards' recorded schemes.

The loader then reads colour and line only, a step's draws are the same on every run (resume), each
step draws anew, and the draws follow the recorded schemes and shares."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.helpers import make_sharded_dataset
from train.batch_synth import BatchSynth
from train.loader import LoaderConfig, device_batches, make_loader
from train.trainer import TrainConfig, Trainer

SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_sharded_dataset(tmp_path_factory.mktemp("synth") / "root", 16, SIZE, "--hints", "points,patches", "--no-hint-share", "0.5",
                                "--artifacts", "paste,warp,spray", "--val", "0", "--shard-samples", "8")


def first_batch(root: Path, count: int = 16) -> dict:
    config = LoaderConfig(shards=(str(root / "shards" / "train"),), batch_size=count, workers=0, shuffle_buffer=0, shuffle_shards=False, images=("color", "line"))
    return next(device_batches(make_loader(config), "cpu"))


def test_the_recorded_schemes_are_read_from_the_shards(dataset):
    synth = BatchSynth.from_shards(dataset, seed=5)
    assert synth.hints == ("points", "patches") and synth.no_hint_share == 0.5
    assert synth.artifacts == ("paste", "warp", "spray") and synth.seed == 5


def test_a_step_draws_the_same_every_time_and_the_next_step_draws_anew(dataset):
    synth, batch = BatchSynth.from_shards(dataset, seed=0), first_batch(dataset)
    once, again, later = synth(batch, step=7), synth(batch, step=7), synth(batch, step=8)
    assert torch.equal(once["hint"], again["hint"]) and torch.equal(once["draft"], again["draft"])
    assert not torch.equal(once["hint"], later["hint"]) and not torch.equal(once["draft"], later["draft"])
    hint, color = once["hint"], batch["color"]
    given = hint[:, 3:] > 0
    assert given.any()
    # points give the image's own colour where given; patches their square's mean: near it either way
    assert ((hint[:, :3] - color).abs() * given).sum() / given.sum() / 3 < 0.2
    assert once["draft"].shape == color.shape and not torch.equal(once["draft"], color)


def test_draws_follow_the_recorded_shares(dataset):
    """Over 40 steps of 16 samples: no hint for half (binomial, 4 sigma), the two schemes about equally."""
    synth, batch = BatchSynth.from_shards(dataset, seed=1), first_batch(dataset)
    empty = points = draws = 0
    for step in range(40):
        alpha = synth(batch, step, drafts=False)["hint"][:, 3]
        given = alpha.flatten(1).gt(0).sum(1)
        empty += int((given == 0).sum())
        points += int(((given > 0) & (given <= 128)).sum())  # points: at most 128 single pixels; patches cover more
        draws += len(given)
    sigma = math.sqrt(draws * 0.25)
    assert abs(empty - draws / 2) < 4 * sigma, (empty, draws)
    hinted = draws - empty
    assert abs(points - hinted / 2) < 4 * math.sqrt(hinted * 0.25) + 0.1 * hinted, (points, hinted)


def trainer(root: Path, recipe: str, stage: str, **options) -> Trainer:
    return Trainer(TrainConfig(root=root, recipe=recipe, stage=stage, size=SIZE, width=0.125, device="cpu", content_loss=False, line_loss=False, **options))


def test_with_device_synthesis_a_recipe_reads_colour_and_line_only(dataset):
    refine = trainer(dataset, "xu2020", "refine", crop=0)
    config = refine.loader_config(steps=4)
    assert config.images == ("color", "line") and config.decode_size == SIZE
    batch = refine.prepare_batch(first_batch(dataset, 4), step=1)
    assert batch["hint"].shape == (4, 4, SIZE, SIZE) and batch["draft"].shape == (4, 3, SIZE, SIZE)
    from_shards = trainer(dataset, "xu2020", "refine", crop=0, synth="shards")
    assert from_shards.loader_config(steps=4).images == ("color", "line", "hint", "draft") and from_shards.batch_synth is None
    # A recipe that crops decodes whole images (the crop is taken at full size).
    assert trainer(dataset, "cheng2018", "draft", crop=32).loader_config(steps=4).decode_size is None


def test_a_bad_synth_choice_is_a_training_error(dataset):
    from train.errors import TrainingError

    with pytest.raises(TrainingError, match="--synth 'disk': choose from device, shards"):
        trainer(dataset, "xu2020", "draft", synth="disk")


def test_lean_train_shards_leave_hints_and_drafts_to_the_trainer(tmp_path, capsys):
    import webdataset as wds

    from pipeline.cli import main

    root = make_sharded_dataset(tmp_path / "root", 12, SIZE, "--hints", "patches", "--val", "0.3", "--lean-train")
    members = {}
    for split in ("train", "val"):
        urls = [str(p) for p in sorted((root / "shards" / split).glob("*.tar"))]
        members[split] = [set(sample) - {"__key__", "__url__", "__local_path__"} for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]
    assert members["train"] and all(m == {"color.png", "line.png", "json"} for m in members["train"])
    assert members["val"] and all({"hint.png", "draft.png"} <= m for m in members["val"])  # pipe eval scores under these
    args = ["train", "refine", str(root), "--recipe", "xu2020", "--steps", "2", "--batch-size", "2", "--size", str(SIZE), "--width", "0.125", "--workers", "0"]
    assert main(args) == 0
    assert main([*args, "--name", "from-shards", "--synth", "shards"]) == 2
    err = capsys.readouterr().err
    assert "hold no hints or drafts (pipe shard --lean-train)" in err and "train with --synth device" in err and "Traceback" not in err


def test_a_resumed_run_draws_what_the_uninterrupted_one_drew(dataset):
    """xu2020 refine reads hints and drafts: drawn on the device per step, a resume repeats the losses exactly."""
    import json

    from pipeline.cli import main

    common = ["train", "refine", str(dataset), "--recipe", "xu2020", "--batch-size", "2", "--size", str(SIZE), "--width", "0.125",
              "--workers", "0", "--log-every", "1", "--deterministic", "--seed", "3"]
    assert main([*common, "--steps", "6", "--name", "straight"]) == 0
    assert main([*common, "--steps", "3", "--name", "stopped"]) == 0
    assert main([*common, "--steps", "6", "--name", "stopped", "--resume"]) == 0

    def losses(name: str) -> dict[int, dict]:
        lines = (dataset / "runs" / name / "metrics.jsonl").read_text().splitlines()
        return {row["step"]: row for row in map(json.loads, lines)}

    straight, resumed = losses("straight"), losses("stopped")
    assert json.loads((dataset / "runs" / "straight" / "config.json").read_text())["synth"] == "device"
    for step in (4, 5, 6):
        for name in ("d_real", "d_fake", "g_gan", "g_l1"):
            assert resumed[step][name] == straight[step][name], (step, name)
