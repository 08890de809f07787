"""The "dilate abs sub" line art of Lee & Lee 2020: edges as the difference between an image and its dilation.

Dilate the colour image with a K x K all-ones kernel, take the absolute difference with the original,
invert (255 minus it) and convert to grey. Every step is integer-exact, so the result is bit-identical
to the same four OpenCV calls.
"""

from __future__ import annotations

import torch

from extractors.ops import check_uint8_rgb, dilate, rgb_to_gray_uint8

KERNEL_CHOICES = (4, 5)


def extract_dilate(images: torch.Tensor, kernel_size: int | list[int] = 5) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> uint8 grey lines (B,1,H,W); `kernel_size` may be one value per sample."""
    check_uint8_rgb(images)
    batch = images.shape[0]
    sizes = [int(kernel_size)] * batch if isinstance(kernel_size, int) else [int(s) for s in kernel_size]
    if len(sizes) != batch:
        raise ValueError(f"expected {batch} kernel sizes, got {len(sizes)}")
    out = torch.empty((batch, 1, *images.shape[-2:]), dtype=torch.uint8, device=images.device)
    for size in sorted(set(sizes)):
        index = torch.tensor([i for i, s in enumerate(sizes) if s == size], device=images.device)
        colour = images.index_select(0, index).to(torch.float32)
        inverted = 255.0 - (dilate(colour, size) - colour).abs()
        out[index] = rgb_to_gray_uint8(inverted.to(torch.uint8))
    return out
