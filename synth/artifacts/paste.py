"""`paste` artifacts: rectangles cut from other images, randomly distorted, pasted over the image.

After the DUT thesis (section 4.3.3) and Zhang et al. 2018: a draft model's typical mistake of
wrong colours in a region. Each of 1..3 rectangles (sides uniform in 16..128) is cut from a donor
image, rotated, scaled and maybe mirrored about its centre, and pasted at a uniform position.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from synth.common import DrawInput, SynthContext, check_images

MIN_COUNT, MAX_COUNT = 1, 3
MIN_SIDE, MAX_SIDE = 16, 128
MAX_ANGLE = 45.0
MIN_SCALE, MAX_SCALE = 0.75, 1.25


def _draw_donor(rng: np.random.Generator, keys: tuple[str, ...], own: str) -> str:
    """A key drawn uniformly from `keys` other than `own` (the image itself when there is no other)."""
    own_index = keys.index(own) if own in keys else -1
    others = len(keys) - (own_index >= 0)
    if others <= 0:
        return own
    index = int(rng.integers(others))
    return keys[index + 1 if 0 <= own_index <= index else index]


def draw_paste_artifacts(rng: np.random.Generator, sample: DrawInput, context: SynthContext) -> dict:
    height, width = sample.height, sample.width
    pastes = []
    for _ in range(int(rng.integers(MIN_COUNT, MAX_COUNT + 1))):
        h = min(int(rng.integers(MIN_SIDE, MAX_SIDE + 1)), height)
        w = min(int(rng.integers(MIN_SIDE, MAX_SIDE + 1)), width)
        donor = _draw_donor(rng, context.donor_keys, sample.key)
        # Source rectangle centre as a fraction of the donor's size (donors may differ in size).
        source = [float(rng.uniform(0, 1)), float(rng.uniform(0, 1))]
        target = [int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))]
        target = context.near_hint(rng, h, w, height, width) or target
        pastes.append(
            {
                "donor": donor,
                "source": source,
                "target": target,
                "size": [h, w],
                "angle": float(rng.uniform(-MAX_ANGLE, MAX_ANGLE)),
                "scale": float(rng.uniform(MIN_SCALE, MAX_SCALE)),
                "mirror": bool(rng.random() < 0.5),
            }
        )
    return {"pastes": pastes}


def _distorted_crop(donor: torch.Tensor, paste: dict) -> torch.Tensor:
    """float (3, h, w): the donor sampled on a rotated, scaled, maybe mirrored h x w grid."""
    h, w = paste["size"]
    donor_h, donor_w = donor.shape[-2:]
    centre_y, centre_x = paste["source"][0] * (donor_h - 1), paste["source"][1] * (donor_w - 1)
    device = donor.device
    ys = torch.arange(h, dtype=torch.float32, device=device) - (h - 1) / 2
    xs = torch.arange(w, dtype=torch.float32, device=device) - (w - 1) / 2
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    if paste["mirror"]:
        grid_x = -grid_x
    angle = math.radians(paste["angle"])
    cos, sin = math.cos(angle) / paste["scale"], math.sin(angle) / paste["scale"]
    source_x = centre_x + cos * grid_x - sin * grid_y
    source_y = centre_y + sin * grid_x + cos * grid_y
    # grid_sample's align_corners=False coordinates: pixel centres at (i + 0.5) / size * 2 - 1.
    grid = torch.stack([(source_x + 0.5) / donor_w * 2 - 1, (source_y + 0.5) / donor_h * 2 - 1], dim=-1)
    return F.grid_sample(donor[None].to(torch.float32), grid[None], mode="bilinear", padding_mode="reflection", align_corners=False)[0]


def apply_paste_artifacts(images: torch.Tensor, params: list[dict], donors: dict[str, torch.Tensor]) -> torch.Tensor:
    """`donors` maps each donor key named in `params` to its uint8 (3, H, W) image (own key: the image itself)."""
    check_images(images, params)
    out = images.clone()
    for index, sample in enumerate(params):
        for paste in sample["pastes"]:
            donor = donors.get(paste["donor"])
            if donor is None:
                raise KeyError(f"paste artifact needs donor image {paste['donor']}, which was not given")
            crop = _distorted_crop(donor.to(images.device), paste)
            y0, x0 = paste["target"]
            h, w = paste["size"]
            out[index, :, y0 : y0 + h, x0 : x0 + w] = crop.round().clamp(0, 255).to(torch.uint8)
    return out
