"""Greyscale instead of lines: Lee & Lee feed the grey image for a share of training samples."""

from __future__ import annotations

import torch

from extractors.ops import rgb_to_gray_uint8


def extract_gray(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> uint8 grey (B,1,H,W), identical to cv2.cvtColor(..., COLOR_RGB2GRAY)."""
    return rgb_to_gray_uint8(images)
