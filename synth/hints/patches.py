"""`patches` hints (the DUT thesis, after Zhang et al. 2017): squares filled with their mean colour.

Count ~ Geometric(p) on {1, 2, ...}; each centre ~ N(image centre, diag((H/4)^2, (W/4)^2)), rounded
and clipped to the image; side uniform in 4..16 px; the square (cropped at the border) is painted
with the mean colour of the same square in the original.
"""

from __future__ import annotations

import numpy as np
import torch

from synth.common import DrawInput, SynthContext, check_images, empty_hints, paint_box

COUNT_P = 0.1
MIN_SIDE, MAX_SIDE = 4, 16


def draw_patch_hints(
    rng: np.random.Generator, sample: DrawInput, context: SynthContext, count_p: float = COUNT_P, min_side: int = MIN_SIDE, max_side: int = MAX_SIDE
) -> dict:
    height, width = sample.height, sample.width
    count = int(rng.geometric(count_p))
    centres = rng.normal(loc=(height / 2, width / 2), scale=(height / 4, width / 4), size=(count, 2))
    centres = np.clip(np.rint(centres), 0, (height - 1, width - 1)).astype(int)
    sides = rng.integers(min_side, max_side + 1, size=count)
    return {"centers": centres.tolist(), "sides": sides.tolist()}


def patch_box(center: list[int], side: int, height: int, width: int) -> list[int]:
    """[y0, x0, y1, x1) of a side x side square centred on `center`, cropped to the image."""
    y0, x0 = center[0] - side // 2, center[1] - side // 2
    return [max(y0, 0), max(x0, 0), min(y0 + side, height), min(x0 + side, width)]


def apply_patch_hints(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    check_images(images, params)
    hints = empty_hints(images)
    height, width = images.shape[-2:]
    for index, sample in enumerate(params):
        for center, side in zip(sample["centers"], sample["sides"]):
            box = patch_box(center, side, height, width)
            region = images[index, :, box[0] : box[2], box[1] : box[3]].to(torch.float32)
            mean = region.mean(dim=(1, 2)).round().clamp(0, 255)
            paint_box(hints, index, box, mean)
    return hints
