"""sRGB to CIELAB on the images' device, with scikit-image's `rgb2lab` constants.

sRGB's piecewise gamma (threshold 0.04045, exponent 2.4), the sRGB primaries' XYZ matrix, the D65
white of the 2-degree observer (0.95047, 1, 1.08883), and CIELAB's f(t) with scikit-image's linear
part (t <= 0.008856: 7.787 t + 16/116). Computed in float64; the result agrees with scikit-image to
about 1e-12 (tested on a sample of all 2^24 colours). Whole images go through this on the device in
`pipe eval`; scikit-image's own function stays where a handful of colours is converted.
"""

from __future__ import annotations

import torch

XYZ_FROM_SRGB = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
D65_WHITE = (0.95047, 1.0, 1.08883)


def _linear_srgb(values: torch.Tensor) -> torch.Tensor:
    """sRGB values in [0, 1] (float64) to linear light."""
    return torch.where(values > 0.04045, ((values + 0.055) / 1.055) ** 2.4, values / 12.92)


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    # torch has no cube root: the power form is exact enough for t > 0.008856 (round-off ~1e-16).
    return torch.where(t > 0.008856, t.clamp(min=0.008856) ** (1.0 / 3.0), 7.787 * t + 16.0 / 116.0)


def srgb_to_lab(images: torch.Tensor) -> torch.Tensor:
    """uint8 sRGB images (B, 3, H, W) -> float64 CIELAB (B, 3, H, W): L in [0, 100], a and b around 0."""
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 RGB images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    # 256 possible values per channel: linearize through a table.
    table = _linear_srgb(torch.arange(256, dtype=torch.float64, device=images.device) / 255.0)
    linear = table[images.long()]
    matrix = torch.tensor(XYZ_FROM_SRGB, dtype=torch.float64, device=images.device)
    white = torch.tensor(D65_WHITE, dtype=torch.float64, device=images.device)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear) / white[None, :, None, None]
    fx, fy, fz = _lab_f(xyz).unbind(dim=1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)
