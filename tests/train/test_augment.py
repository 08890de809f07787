"""Crop/flip augmentation: one seeded draw per sample and step, the same window for every member, on the device."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from train.augment import augment_batch, crop_and_flip, draw_augment
from train.trainer import TrainConfig, Trainer

KEYS = ["a1", "b2", "c3"]


def position_batch(size: int = 32, device: str = "cpu") -> dict:
    """Members whose every pixel encodes its own (row, column), so a crop's window can be read back."""
    rows = torch.arange(size, dtype=torch.float32, device=device)[:, None].expand(size, size) / size
    columns = torch.arange(size, dtype=torch.float32, device=device)[None, :].expand(size, size) / size
    sample = torch.stack([rows, columns, rows * columns])
    offsets = torch.arange(len(KEYS), dtype=torch.float32, device=device)[:, None, None, None] / 10
    color = (sample[None] + offsets).expand(len(KEYS), 3, size, size).contiguous()
    return {
        "__key__": list(KEYS),
        "color": color,
        "line": color[:, :1].clone(),
        "hint": torch.cat([color, color[:, 2:]], dim=1),
        "draft": color.clone() * 0.5,
        "palette": torch.rand(len(KEYS), 12, size, size, device=device),
    }


def test_every_member_of_a_sample_gets_the_same_crop_and_flip():
    batch = position_batch()
    params = draw_augment(KEYS, seed=7, step=3, height=32, width=32, crop=16, flip=True)
    out = augment_batch(batch, params)
    for i in range(len(KEYS)):
        top, left, flip = int(params.top[i]), int(params.left[i]), bool(params.flip[i])
        expected = batch["color"][i, :, top : top + 16, left : left + 16]
        expected = expected.flip(-1) if flip else expected
        assert torch.equal(out["color"][i], expected)
        assert torch.equal(out["line"][i], expected[:1])
        assert torch.equal(out["hint"][i, :3], expected)
        assert torch.equal(out["draft"][i], expected * 0.5)
    # The palette describes the whole reference image: neither cropped nor flipped.
    assert out["palette"] is batch["palette"]
    assert out["__key__"] == KEYS


def test_draws_are_reproducible_from_the_seed_and_differ_by_step_and_sample():
    many = [f"key{i}" for i in range(16)]
    draw = lambda seed, step: draw_augment(many, seed, step, 512, 512, 256, True)  # noqa: E731
    first, again = draw(0, 5), draw(0, 5)
    assert torch.equal(first.top, again.top) and torch.equal(first.left, again.left) and torch.equal(first.flip, again.flip)
    # Key order does not matter: each sample's draw is its own.
    shuffled = draw_augment(list(reversed(KEYS)), 0, 5, 512, 512, 256, True)
    assert shuffled.top.tolist() == list(reversed(draw_augment(KEYS, 0, 5, 512, 512, 256, True).top.tolist()))
    other_step, other_seed = draw(0, 6), draw(1, 5)
    assert not torch.equal(first.top, other_step.top) and not torch.equal(first.top, other_seed.top)
    assert 0 <= int(first.top.min()) and int(first.top.max()) <= 256
    assert 0 < int(first.flip.sum()) < len(first.flip)  # 16 draws at 1/2: some of each


def test_no_crop_and_no_flip_keeps_the_batch_and_bad_crops_say_why():
    batch = position_batch()
    params = draw_augment(KEYS, 0, 1, 32, 32, None, False)
    assert params.crop == 32 and not params.flip.any()
    assert torch.equal(augment_batch(batch, params)["color"], batch["color"])
    # A crop larger than the images takes them whole.
    assert draw_augment(KEYS, 0, 1, 32, 32, 512, False).crop == 32
    with pytest.raises(ValueError, match="does not fit"):
        crop_and_flip(torch.zeros(3, 1, 8, 8), params)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_and_cpu_crops_agree():
    params = draw_augment(KEYS, 3, 2, 32, 32, 16, True)
    cpu = augment_batch(position_batch(), params)
    cuda = augment_batch(position_batch(device="cuda"), params)
    assert cuda["color"].device.type == "cuda"
    assert torch.equal(cuda["color"].cpu(), cpu["color"])


def test_the_trainer_crops_with_the_recipes_crop_then_resizes(tmp_path: Path):
    # cheng2018 trains on random 256x256 crops of the 512 images (no resize after the crop).
    trainer = Trainer(TrainConfig(root=tmp_path, recipe="cheng2018", stage="draft", width=0.125, device="cpu", seed=4))
    assert trainer.settings["crop"] == 256 and trainer.size == 256
    batch = position_batch(512)
    first = trainer.prepare_batch(batch, step=1)
    assert first["color"].shape[-2:] == (256, 256)
    params = draw_augment(KEYS, 4, 1, 512, 512, 256, False)
    assert torch.equal(first["color"], augment_batch(batch, params)["color"])
    assert torch.equal(trainer.prepare_batch(batch, step=1)["color"], first["color"])
    assert not torch.equal(trainer.prepare_batch(batch, step=2)["color"], first["color"])
