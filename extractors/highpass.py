"""The plain high-pass sketch sketchKeras compares itself with.

Per channel, how much darker a pixel is than its Gaussian-blurred surroundings; the maximum over the
channels; divided by the image's largest value; inverted so lines are dark on white.
"""

from __future__ import annotations

import torch

from extractors.ops import check_uint8_rgb, gaussian_blur, to_uint8

SIGMA = 3.0
# Below half a grey level the "lines" are float rounding in the blur of a flat image: no lines.
MIN_PEAK = 0.5


def extract_highpass(images: torch.Tensor, sigma=SIGMA) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> uint8 grey lines (B,1,H,W)."""
    check_uint8_rgb(images)
    colour = images.to(torch.float32)
    darker = (gaussian_blur(colour, sigma) - colour).amax(dim=1, keepdim=True).clamp(min=0)
    peak = darker.amax(dim=(2, 3), keepdim=True)
    normalized = torch.where(peak > MIN_PEAK, darker / peak.clamp(min=MIN_PEAK), torch.zeros_like(darker))
    return to_uint8(1.0 - normalized)
