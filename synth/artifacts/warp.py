"""`warp` artifacts: a random smooth displacement field plus a blur, so colours slip off their edges.

A coarse grid of control points (4 x 4) gets displacements ~ N(0, amplitude^2) pixels, amplitude
uniform in 2..10; the field is upsampled bicubically to full size, the image resampled through it,
then blurred with sigma uniform in 0.5..2.0.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from extractors.ops import gaussian_blur_fast
from synth.common import DrawInput, SynthContext, check_images

GRID = 4
MIN_AMPLITUDE, MAX_AMPLITUDE = 2.0, 10.0
MIN_SIGMA, MAX_SIGMA = 0.5, 2.0


def draw_warp_artifacts(rng: np.random.Generator, sample: DrawInput, context: SynthContext, grid: int = GRID) -> dict:
    amplitude = float(rng.uniform(MIN_AMPLITUDE, MAX_AMPLITUDE))
    displacement = rng.normal(0.0, amplitude, size=(2, grid, grid))
    return {"amplitude": amplitude, "displacement": np.round(displacement, 4).tolist(), "sigma": float(rng.uniform(MIN_SIGMA, MAX_SIGMA))}


def bicubic_weights(grid: int, size: int, device: torch.device) -> torch.Tensor:
    """(size, grid): torch's bicubic (align_corners) interpolation from `grid` points to `size` as a matrix."""
    basis = torch.eye(grid, dtype=torch.float32, device=device).view(grid, 1, grid, 1)
    return F.interpolate(basis, size=(size, 1), mode="bicubic", align_corners=True)[:, 0, :, 0].T


def displacement_field(coarse: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, g, g) control displacements -> (B, 2, H, W), bicubically upsampled: bicubic is separable,
    so it is two small matrix products instead of F.interpolate's per-pixel 16-tap gather."""
    rows = bicubic_weights(coarse.shape[-2], height, coarse.device)
    columns = bicubic_weights(coarse.shape[-1], width, coarse.device)
    return rows @ coarse @ columns.T


def apply_warp_artifacts(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    check_images(images, params)
    batch, _, height, width = images.shape
    device = images.device
    coarse = torch.as_tensor([p["displacement"] for p in params], dtype=torch.float32, device=device)  # (B, 2, g, g): dy, dx
    field = displacement_field(coarse, height, width)
    ys = torch.arange(height, dtype=torch.float32, device=device).view(1, height, 1)
    xs = torch.arange(width, dtype=torch.float32, device=device).view(1, 1, width)
    source_y = ys + field[:, 0]
    source_x = xs + field[:, 1]
    grid = torch.stack([(source_x + 0.5) / width * 2 - 1, (source_y + 0.5) / height * 2 - 1], dim=-1)
    warped = F.grid_sample(images.to(torch.float32), grid, mode="bilinear", padding_mode="border", align_corners=False)
    blurred = gaussian_blur_fast(warped, [p["sigma"] for p in params])
    return blurred.round().clamp(0, 255).to(torch.uint8)
