"""`blur` hints (Cheng's two-stage cGAN): the colour image with 30 45x45 patches whitened, then blurred 115x115.

The alpha channel says how much of each pixel's colour comes from the image rather than from a
whitened patch: the patch mask goes through the same blur, so alpha fades where white bled in.
"""

from __future__ import annotations

import numpy as np
import torch

from synth.common import DrawInput, SynthContext, blur_separable, check_images, opencv_sigma_for_ksize, uniform_box

PATCHES = 30
PATCH_SIZE = 45
KERNEL_SIZE = 115


def draw_blur_hints(
    rng: np.random.Generator, sample: DrawInput, context: SynthContext, patches: int = PATCHES, patch_size: int = PATCH_SIZE, kernel_size: int = KERNEL_SIZE
) -> dict:
    boxes = [uniform_box(rng, sample.height, sample.width, patch_size) for _ in range(patches)]
    return {"boxes": boxes, "kernel_size": kernel_size}


def apply_blur_hints(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    check_images(images, params)
    outputs = []
    for index, sample in enumerate(params):
        image = images[index : index + 1].to(torch.float32)
        given = torch.ones_like(image[:, :1])
        for y0, x0, y1, x1 in sample["boxes"]:
            image[:, :, y0:y1, x0:x1] = 255.0
            given[:, :, y0:y1, x0:x1] = 0.0
        ksize = int(sample["kernel_size"])
        blurred = blur_separable(torch.cat([image, given * 255.0], dim=1), ksize, opencv_sigma_for_ksize(ksize))
        outputs.append(blurred.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(outputs)
