"""What a stage's generator sees: loader batches (float [0, 1]) turned into [-1, 1] input stacks,
and every batch member brought to a model's size (`resize_batch`: dense images area-resized, the
sparse RGBA hint by `resize_hint`, which keeps a given hint a full-strength hint at any size; the
trainer, `pipe colorize`, `pipe serve` and `pipe eval` all resize through it).

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


def resize_dense(images: torch.Tensor, size: int) -> torch.Tensor:
    """A dense image (colour, line, draft, palette) at size x size: area when shrinking, bilinear when growing."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    if images.shape[-1] > size:
        return F.interpolate(images, size=(size, size), mode="area")
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def resize_hint(hint: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """RGBA hints (B, 4, H, W) in [0, 1], alpha = where given, at `size` (side, or (height, width))
    without washing them out.

    Shrinking max-pools the alpha (a window holding a full-strength hint pixel is a full-strength
    hint) and takes the colour as the alpha-weighted mean over the window (the given colours only,
    not the empty pixels around them); where nothing is given the colour is 0. Growing repeats
    pixels (nearest): a hint stays a hint of the same strength and colour. Area or bilinear
    resampling would instead give a one-pixel hint at 512 px an alpha of 1/16 at 128 px.
    """
    if hint.ndim != 4 or hint.shape[1] != 4:
        raise ValueError(f"expected RGBA hints (B, 4, H, W), got {tuple(hint.shape)}")
    target = (size, size) if isinstance(size, int) else tuple(size)
    height, width = hint.shape[-2:]
    if (height, width) == target:
        return hint
    if height < target[0] or width < target[1]:
        hint = F.interpolate(hint, size=(max(height, target[0]), max(width, target[1])), mode="nearest-exact")
        if tuple(hint.shape[-2:]) == target:
            return hint
    rgb, alpha = hint[:, :3], hint[:, 3:]
    given = F.adaptive_max_pool2d(alpha, target)
    weight = F.adaptive_avg_pool2d(alpha, target)
    colour = F.adaptive_avg_pool2d(rgb * alpha, target) / weight.clamp_min(torch.finfo(hint.dtype).tiny)
    colour = torch.where(weight > 0, colour, torch.zeros_like(colour)).clamp(0, 1)
    return torch.cat([colour, given], dim=1)


# Members that mark where something is given (sparse): resampled by resize_hint, never averaged.
SPARSE_KEYS = ("hint",)


def resize_batch(batch: dict, size: int) -> dict:
    """Every image tensor of the batch at size x size: dense members by `resize_dense`, the RGBA
    hint (sparse) by `resize_hint`, so a given hint keeps its full strength at any training size."""
    out = dict(batch)
    for key in IMAGE_KEYS:
        image = out.get(key)
        if image is None or tuple(image.shape[-2:]) == (size, size):
            continue
        out[key] = resize_hint(image, size) if key in SPARSE_KEYS else resize_dense(image, size)
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
