"""Every command that opens a checkpoint (colorize, serve, eval, train refine --drafts-from, train
--resume) refuses a hostile file in one line without running its code; a checkpoint of an earlier pipe
names the convert command, which turns it into one every command loads, with the same weights."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.cli import main
from tests.helpers import make_sharded_dataset
from tests.pipeline.test_new_user_train import one_line_error
from tests.train.test_checkpoint_safety import hostile_files
from train.checkpoint import FORMAT, LEGACY_FORMAT, read_checkpoint, write_payload

SIZE = 64
COMMON = ["--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A sharded dataset with a val split, a 1-step xu2020 draft run, and a folder of sketches."""
    base = tmp_path_factory.mktemp("checkpoint-entry")
    root = make_sharded_dataset(base / "root", 8, SIZE, "--hints", "patches", "--val", "0.3", "--shard-samples", "4")
    assert main(["train", "draft", str(root), "--recipe", "xu2020", "--steps", "1", *COMMON, "--name", "draft"]) == 0
    sketches = base / "sketches"
    sketches.mkdir()
    lines = np.full((48, 80), 255, np.uint8)
    cv2.rectangle(lines, (10, 10), (60, 40), 0, 2)
    cv2.imwrite(str(sketches / "box.png"), lines)
    return {"root": root, "base": base, "sketches": sketches, "draft": root / "runs" / "draft" / "checkpoints" / "last.pt"}


def entry_points(trained: dict, checkpoint: Path, run: str) -> dict[str, list[str]]:
    """The five commands that read a checkpoint, each given `checkpoint` (for --resume: the run `run`,
    whose last.pt it must be)."""
    root, out = str(trained["root"]), str(trained["base"] / "out")
    return {
        "colorize": ["colorize", str(trained["sketches"]), "--draft", str(checkpoint), "-o", out, "--device", "cpu"],
        "serve": ["serve", "--draft", str(checkpoint), "--port", "0", "--device", "cpu"],
        "eval": ["eval", root, "--draft", str(checkpoint), "--no-fid", "--device", "cpu", "--workers", "0"],
        "drafts-from": ["train", "refine", root, "--recipe", "cheng2018", "--steps", "1", *COMMON, "--name", f"{run}-refine", "--drafts-from", str(checkpoint)],
        "resume": ["train", "draft", root, "--recipe", "xu2020", "--steps", "2", *COMMON, "--name", run, "--resume"],
    }


def as_run(trained: dict, run: str, checkpoint: Path) -> Path:
    """A copy of the draft run named `run`, whose last.pt is `checkpoint`'s bytes."""
    folder = trained["root"] / "runs" / run
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(trained["draft"].parent.parent, folder)
    target = folder / "checkpoints" / "last.pt"
    target.write_bytes(checkpoint.read_bytes())
    return target


@pytest.mark.parametrize("kind", ["old-format", "forged", "bare"])
def test_each_entry_point_refuses_a_hostile_checkpoint_without_running_it(trained, kind, capsys):
    marker = trained["base"] / f"marker-{kind}"
    run = f"hostile-{kind}"
    hostile = as_run(trained, run, hostile_files(trained["base"] / kind, marker)[kind])
    for name, args in entry_points(trained, hostile, run).items():
        capsys.readouterr()
        assert main(args) == 2, name
        err = one_line_error(capsys)
        assert str(hostile) in err and "listening" not in err, (name, err)
        assert not marker.exists(), f"{name} ran the file's code"
    assert not (trained["root"] / "runs" / f"{run}-refine" / "checkpoints").exists()


def write_legacy(path: Path, payload: dict) -> None:
    """What pipe.checkpoint/1 wrote: the RNG states as Python's and NumPy's own objects, fully pickled."""
    old = {**payload, "format": LEGACY_FORMAT,
           "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(), "cuda": []}}
    torch.save(old, path)


def test_an_old_checkpoint_names_the_convert_command_which_makes_it_load_with_the_same_weights(trained, tmp_path, capsys):
    original = read_checkpoint(trained["draft"])
    old = as_run(trained, "old", trained["draft"])
    np.random.seed(5)
    numpy_state = np.random.get_state()
    write_legacy(old, original)
    for name, args in entry_points(trained, old, "old").items():
        capsys.readouterr()
        assert main(args) == 2, name
        assert f"convert it once with `pipe weights convert-checkpoint {old}`" in one_line_error(capsys), name
    assert main(["weights", "convert-checkpoint", str(old), "-o", str(tmp_path / "kept.pt")]) == 0
    assert f"converted {old} ({LEGACY_FORMAT}, step 1) to {tmp_path / 'kept.pt'} ({FORMAT})" in " ".join(capsys.readouterr().err.split())
    assert torch.load(old, weights_only=False)["format"] == LEGACY_FORMAT  # --output leaves the old file alone
    assert main(["weights", "convert-checkpoint", str(old)]) == 0
    converted = read_checkpoint(old)
    assert converted["step"] == original["step"] and converted["extras"] == original["extras"]
    assert converted["rng"]["numpy"]["keys"].tolist() == numpy_state[1].tolist() and converted["rng"]["numpy"]["pos"] == numpy_state[2]
    for module, state in original["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(converted["state"][module][key], value), (module, key)
    assert main(entry_points(trained, old, "old")["colorize"]) == 0
    assert main(entry_points(trained, old, "old")["resume"]) == 0
    assert read_checkpoint(old)["step"] == 2


def test_convert_refuses_what_is_not_an_old_checkpoint_without_loading_it(trained, capsys):
    marker = trained["base"] / "marker-convert"
    bare = hostile_files(trained["base"] / "convert", marker)["bare"]
    capsys.readouterr()
    assert main(["weights", "convert-checkpoint", str(bare)]) == 2
    assert f"{bare} is not a checkpoint of an earlier pipe ({LEGACY_FORMAT}): refused without loading it" in one_line_error(capsys)
    assert not marker.exists()
    assert main(["weights", "convert-checkpoint", str(trained["draft"])]) == 2
    assert f"is a {FORMAT} checkpoint already: nothing to convert" in one_line_error(capsys)


def test_damaged_checkpoints_are_one_line_at_the_command_line(trained, tmp_path, capsys):
    payload = read_checkpoint(trained["draft"])
    del payload["extras"]
    write_payload(tmp_path / "no-extras.pt", payload)
    data = trained["draft"].read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x10
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    expected = {"no-extras.pt": "is damaged: its payload has no extras", "cut.pt": "is damaged (truncated or corrupted)", "flipped.pt": "is damaged: checksum mismatch"}
    for name, message in expected.items():
        capsys.readouterr()
        assert main(entry_points(trained, tmp_path / name, "unused")["colorize"]) == 2
        assert f"{tmp_path / name} {message}" in one_line_error(capsys)
