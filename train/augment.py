"""Crop and flip augmentation of training batches: one draw per sample, applied to all its members.

A sample's crop position and flip are drawn from its own generator, seeded by (seed, "augment",
key, step) through `manifests.seeding.sample_rng`: the same seed gives the same crops on every
machine and after a resume, and a sample seen again at a later step gets a new crop. The draws are
a few integers per sample (`AugmentParams`, tensors of shape (B,)); the crop and flip themselves run
on the batch's device, on every image member of the sample at once (colour, line, hint, draft), so
the line, hints and draft stay aligned with the colour image pixel for pixel. The palette is a
description of the whole reference image (each band's colours), not a picture of positions: it is
neither cropped nor flipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from manifests.seeding import sample_rng

# The members that are pictures of the sample's pixels (what a crop or flip must move together).
SPATIAL_KEYS = ("color", "line", "hint", "draft")


@dataclass(frozen=True)
class AugmentParams:
    """Per sample: the crop's top-left corner and whether to mirror left-right; `crop` is the side."""

    top: torch.Tensor  # (B,) int64
    left: torch.Tensor  # (B,) int64
    flip: torch.Tensor  # (B,) bool
    crop: int


def draw_augment(keys: list[str], seed: int, step: int, height: int, width: int, crop: int | None, flip: bool) -> AugmentParams:
    """Each sample's crop (a `crop` x `crop` window, uniform over the image; the whole image when
    `crop` is None or not smaller) and flip (probability 1/2 when `flip`), from its own generator."""
    side = min(crop or max(height, width), height, width)
    tops, lefts, flips = [], [], []
    for key in keys:
        rng = sample_rng(seed, "augment", key, str(step))
        tops.append(int(rng.integers(0, height - side + 1)))
        lefts.append(int(rng.integers(0, width - side + 1)))
        flips.append(bool(flip and rng.random() < 0.5))
    return AugmentParams(torch.tensor(tops, dtype=torch.int64), torch.tensor(lefts, dtype=torch.int64), torch.tensor(flips, dtype=torch.bool), side)


def crop_and_flip(images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, crop, crop): sample i's window at (top[i], left[i]), mirrored where flip[i]."""
    if images.ndim != 4 or images.shape[0] != params.top.shape[0]:
        raise ValueError(f"expected (B, C, H, W) with B = {params.top.shape[0]}, got {tuple(images.shape)}")
    height, width = images.shape[-2:]
    if params.crop > min(height, width):
        raise ValueError(f"a {params.crop} px crop does not fit a {height}x{width} image")
    device = images.device
    offsets = torch.arange(params.crop, device=device)
    rows = params.top.to(device)[:, None] + offsets  # (B, crop)
    columns = params.left.to(device)[:, None] + offsets
    columns = torch.where(params.flip.to(device)[:, None], columns.flip(1), columns)
    batch, channels = images.shape[:2]
    rows = rows[:, None, :, None].expand(batch, channels, params.crop, width)
    picked = torch.gather(images, 2, rows)
    columns = columns[:, None, None, :].expand(batch, channels, params.crop, params.crop)
    return torch.gather(picked, 3, columns)


def augment_batch(batch: dict, params: AugmentParams) -> dict:
    """The batch with every spatial member cropped and flipped by `params` (other entries as they are)."""
    out = dict(batch)
    for key in SPATIAL_KEYS:
        if isinstance(out.get(key), torch.Tensor):
            out[key] = crop_and_flip(out[key], params)
    return out
