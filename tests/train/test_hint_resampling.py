"""Sparse inputs survive resizing: a full-strength hint pixel at 512 is one full-strength hint at the
model's size, in training, in `pipe colorize` (and serve, through the same function) and in eval."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from train.colorize import colour_batch, place_hint, read_hint, run_generator
from train.inference import LoadedGenerator
from train.inputs import generator_input, resize_hint
from train.recipes import stage_recipe
from train.trainer import TrainConfig, Trainer

COLOUR = (0.2, 0.6, 1.0)
SPOT = (301, 77)  # (row, column) of the one hint pixel at 512


def one_hint_batch(size: int = 512) -> dict:
    hint = torch.zeros(1, 4, size, size)
    hint[0, :3, SPOT[0], SPOT[1]] = torch.tensor(COLOUR)
    hint[0, 3, SPOT[0], SPOT[1]] = 1.0
    return {"__key__": ["k"], "color": torch.rand(1, 3, size, size), "line": torch.ones(1, 1, size, size), "hint": hint}


def assert_one_full_hint(hint_input: torch.Tensor, size: int, kind: str) -> None:
    """`hint_input`: the generator's hint channels ([-1, 1]): "hint" (colour x alpha, alpha) or "hint_rgb"."""
    assert hint_input.shape[-2:] == (size, size)
    colour = torch.tensor(COLOUR) * 2 - 1
    if kind == "hint":
        alpha = hint_input[0, 3]
        given = (alpha > -1).nonzero().tolist()
        assert len(given) == 1 and alpha[tuple(given[0])] == 1.0  # one pixel, full strength
        assert torch.allclose(hint_input[0, :3, given[0][0], given[0][1]], colour, atol=1e-6)
    else:
        changed = (hint_input[0] != 1).any(0).nonzero().tolist()  # white where nothing is given
        assert len(changed) == 1
        assert torch.allclose(hint_input[0, :, changed[0][0], changed[0][1]], colour, atol=1e-6)
    expected = (SPOT[0] * size // 512, SPOT[1] * size // 512)
    position = (hint_input[0, -1] > -1).nonzero().tolist()[0] if kind == "hint" else (hint_input[0] != 1).any(0).nonzero().tolist()[0]
    assert tuple(position) == expected


@pytest.mark.parametrize("size", [128, 256, 1024])
def test_resize_hint_keeps_one_full_strength_pixel(size):
    resized = resize_hint(one_hint_batch()["hint"], size)
    given = resized[0, 3] > 0
    assert int(given.sum()) == (1 if size <= 512 else (size // 512) ** 2)
    assert float(resized[0, 3].max()) == 1.0
    assert torch.allclose(resized[0, :3][:, given].T, torch.tensor(COLOUR).expand(int(given.sum()), 3), atol=1e-6)
    # What the area resize did before: alpha 1/16 at 128 px.
    area = torch.nn.functional.interpolate(one_hint_batch()["hint"], size=(128, 128), mode="area")
    assert float(area[0, 3].max()) == pytest.approx(1 / 16)


def test_resize_hint_takes_the_mean_of_the_given_colours_only():
    hint = torch.zeros(1, 4, 4, 4)
    hint[0, :3, 0, 0], hint[0, 3, 0, 0] = torch.tensor([1.0, 0.0, 0.0]), 1.0
    hint[0, :3, 1, 1], hint[0, 3, 1, 1] = torch.tensor([0.0, 0.0, 1.0]), 1.0
    out = resize_hint(hint, 1)
    assert out[0, :, 0, 0].tolist() == [0.5, 0.0, 0.5, 1.0]
    assert resize_hint(torch.zeros(1, 4, 8, 8), 2).abs().sum() == 0
    with pytest.raises(ValueError, match="RGBA"):
        resize_hint(torch.zeros(1, 3, 8, 8), 4)


@pytest.mark.parametrize("recipe,size,kind", [("lee2020", 128, "hint"), ("lee2020", 256, "hint"), ("cheng2018", 128, "hint_rgb"), ("cheng2018", 256, "hint_rgb")])
def test_training_feeds_the_generator_one_full_strength_hint(tmp_path: Path, recipe, size, kind):
    config = TrainConfig(root=tmp_path, recipe=recipe, stage="draft", size=size, crop=0, width=0.125, device="cpu", content_loss=False, line_loss=False)
    trainer = Trainer(config)
    batch = trainer.prepare_batch(one_hint_batch(), step=1)
    names = trainer.recipe.inputs
    stacked = generator_input(batch, names)
    start = sum({"line": 1, "hint": 4, "hint_rgb": 3}[n] for n in names[: names.index(kind)])
    assert_one_full_hint(stacked[:, start : start + (4 if kind == "hint" else 3)], size, kind)


class Recorder(nn.Module):
    """A stand-in generator that keeps what it was given and returns a grey image."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return torch.zeros(x.shape[0], 3, *x.shape[-2:])


def recording_model(recipe: str, size: int) -> LoadedGenerator:
    return LoadedGenerator(Recorder(), stage_recipe(recipe, "draft"), size, {"recipe": recipe, "stage": "draft"}, 0, "raw")


@pytest.mark.parametrize("size", [128, 256])
def test_colorize_feeds_the_generator_one_full_strength_hint(size):
    model = recording_model("lee2020", size)
    batch = one_hint_batch()
    run_generator(model, {"line": batch["line"], "hint": batch["hint"]}, torch.device("cpu"))
    assert_one_full_hint(model.generator.seen[-1][:, 1:5], size, "hint")


def test_colorize_places_hint_files_without_averaging_them(tmp_path: Path):
    rgba = np.zeros((512, 512, 4), np.uint8)
    rgba[SPOT] = (51, 153, 255, 255)
    placed, placement = place_hint(rgba, 128)
    given = placed[..., 3] > 0
    assert int(given.sum()) == 1 and placed[given][0].tolist() == [51, 153, 255, 255]
    # A hint file reads as it was saved; one of another size than its sketch is refused (as serve does), never stretched.
    path = tmp_path / "hint.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    read = read_hint(path, (512, 512))
    assert int((read[..., 3] > 0).sum()) == 1 and read[read[..., 3] > 0][0].tolist() == [51, 153, 255, 255]
    with pytest.raises(ValueError, match="hint hint.png is 512x512, the sketch is 256x256"):
        read_hint(path, (256, 256))
    # Non-square sketches: the long side is scaled to the model's size, the rest is "nothing given".
    wide, placement = place_hint(rgba[200:456], 128)
    assert wide.shape == (128, 128, 4) and placement.inner(128) == (64, 128)
    assert [tuple(p) for p in np.argwhere(wide[..., 3] > 0)] == [((SPOT[0] - 200) // 4, SPOT[1] // 4)]
    assert wide[(SPOT[0] - 200) // 4, SPOT[1] // 4].tolist() == [51, 153, 255, 255]


def test_eval_colours_cfid_hints_as_full_strength_pixels_at_the_model_size():
    """What `pipe eval` does under the C-FID setting (pipeline.eval.run._score_batch): 28 hint pixels
    drawn at the shard size, coloured through train.colorize.colour_batch by a 128 px model."""
    from pipeline.eval.hints import eval_hints
    from train.loader import to_device

    colors = (torch.rand(2, 3, 512, 512) * 255).to(torch.uint8)
    hints = eval_hints("cfid", colors, ["sample-a", "sample-b"], None)
    assert [(hints[i, 3] == 255).sum().item() for i in range(2)] == [28, 28]
    model = recording_model("lee2020", 128)
    inputs = to_device({"color": colors, "line": torch.full((2, 1, 512, 512), 255, dtype=torch.uint8), "hint": hints}, "cpu")
    colour_batch(model, None, {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor) and k != "color"}, torch.device("cpu"), 128)
    alpha = (model.generator.seen[-1][:, 4] + 1) / 2
    for i in range(2):
        windows = {(int(r) // 4, int(c) // 4) for r, c in (hints[i, 3] == 255).nonzero().tolist()}
        assert set(torch.unique(alpha[i]).tolist()) <= {0.0, 1.0}  # every given pixel at full strength
        assert int(alpha[i].sum()) == len(windows)  # 28 unless two share a 4x4 window
