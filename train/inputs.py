"""What a stage's generator sees: loader batches (float [0, 1]) turned into [-1, 1] input stacks.

Input names a recipe can ask for, with their channels:
  line      1  the line art
  line3     3  the line art as an RGB image (for networks published with 3-channel sketches)
  hint      4  hint colour where given (else 0) and the where-given mask
  hint_rgb  3  hint colour where given, white elsewhere (Cheng's hint image)
  draft     3  the erroneous draft
  palette  12  the four palette images
  color     3  the colour image itself (the Line Detection Model's input)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

INPUT_CHANNELS = {"line": 1, "line3": 3, "hint": 4, "hint_rgb": 3, "draft": 3, "palette": 12, "color": 3}
IMAGE_KEYS = ("color", "line", "hint", "draft", "palette")


def input_channels(names: tuple[str, ...]) -> int:
    unknown = [n for n in names if n not in INPUT_CHANNELS]
    if unknown:
        raise ValueError(f"unknown generator input {', '.join(unknown)}; choose from {', '.join(INPUT_CHANNELS)}")
    return sum(INPUT_CHANNELS[n] for n in names)


def resize_batch(batch: dict, size: int) -> dict:
    """Every image tensor of the batch at size x size (area when shrinking, bilinear when growing)."""
    out = dict(batch)
    for key in IMAGE_KEYS:
        image = out.get(key)
        if image is None or tuple(image.shape[-2:]) == (size, size):
            continue
        mode = "area" if image.shape[-1] > size else "bilinear"
        out[key] = F.interpolate(image, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))
    return out


def _part(batch: dict, name: str) -> torch.Tensor:
    if name == "line":
        return batch["line"] * 2 - 1
    if name == "line3":
        return (batch["line"] * 2 - 1).expand(-1, 3, -1, -1)
    if name in ("hint", "hint_rgb"):
        hint = batch["hint"]
        rgb, alpha = hint[:, :3], hint[:, 3:]
        if name == "hint":
            return torch.cat([(rgb * 2 - 1) * alpha, alpha * 2 - 1], dim=1)
        return (rgb * alpha + (1 - alpha)) * 2 - 1
    if name in ("draft", "palette", "color"):
        if name not in batch:
            raise KeyError(f"the shards have no {name} member: make them with `pipe shard` options that produce it")
        return batch[name] * 2 - 1
    raise ValueError(f"unknown generator input {name!r}")


def generator_input(batch: dict, names: tuple[str, ...]) -> torch.Tensor:
    return torch.cat([_part(batch, name) for name in names], dim=1)


def target_image(batch: dict, target: str = "color") -> torch.Tensor:
    """What the generator should produce, in [-1, 1]: the colour image, or the line art (LDM training)."""
    return batch[target] * 2 - 1
