"""Line post-processing that applies to any method: resize, histogram equalization, Otsu binarization.

Lee & Lee equalize the line histograms so that the many line styles look alike to the model; Otsu
gives clean two-level lines; resizing brings lines to the training size. Each op takes uint8 grey
(B, 1, H, W) and returns the same, and matches the OpenCV call named in its docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from extractors.ops import check_batch, histogram_uint8

# OpenCV's Otsu skips splits where either class holds less than this share (FLT_EPSILON).
_FLT_EPSILON = 1.1920928955078125e-07


def _check_lines(lines: torch.Tensor) -> None:
    check_batch(lines, channels=1, name="lines")
    if lines.dtype != torch.uint8:
        raise ValueError(f"lines must be uint8, got {lines.dtype}")


def equalize_histogram(lines: torch.Tensor) -> torch.Tensor:
    """Per-sample cv2.equalizeHist: grey levels remapped so their cumulative histogram is linear."""
    _check_lines(lines)
    hist = histogram_uint8(lines)
    total = hist.sum(dim=1, keepdim=True)
    first = (hist > 0).to(torch.int64).argmax(dim=1, keepdim=True)  # darkest level present
    first_count = hist.gather(1, first)
    cumulative = hist.cumsum(dim=1) - first_count
    # float32 arithmetic and round-half-even, as OpenCV's lut[i] = saturate_cast<uchar>(sum * scale).
    scale = 255.0 / (total - first_count).clamp(min=1).to(torch.float32)
    lut = (cumulative.to(torch.float32) * scale).round().clamp(0, 255)
    levels = torch.arange(256, device=lines.device).unsqueeze(0)
    lut = torch.where(levels <= first, torch.zeros_like(lut), lut)
    # A one-level image stays as it is (OpenCV fills it with its level).
    constant = total == first_count
    lut = torch.where(constant, first.to(lut.dtype).expand_as(lut), lut).to(torch.uint8)
    flat = lines.reshape(lines.shape[0], -1).to(torch.int64)
    return lut.gather(1, flat).reshape(lines.shape)


def otsu_threshold(lines: torch.Tensor) -> torch.Tensor:
    """Per-sample Otsu threshold (int64, B): the level cv2.threshold(..., THRESH_OTSU) returns."""
    _check_lines(lines)
    hist = histogram_uint8(lines).to(torch.float64)
    share = hist / hist.sum(dim=1, keepdim=True)
    levels = torch.arange(256, dtype=torch.float64, device=lines.device)
    mean = (share * levels).sum(dim=1, keepdim=True)
    below = share.cumsum(dim=1)
    above = 1.0 - below
    below_mean = (share * levels).cumsum(dim=1) / below.clamp(min=1e-300)
    above_mean = (mean - below * below_mean) / above.clamp(min=1e-300)
    between = below * above * (below_mean - above_mean) ** 2
    valid = (torch.minimum(below, above) >= _FLT_EPSILON) & (torch.maximum(below, above) <= 1.0 - _FLT_EPSILON)
    between = torch.where(valid, between, torch.full_like(between, -1.0))
    best = between.argmax(dim=1)  # the first maximum, as OpenCV keeps the first strictly larger
    return torch.where(valid.any(dim=1), best, torch.zeros_like(best))


def binarize_otsu(lines: torch.Tensor) -> torch.Tensor:
    """cv2.threshold(lines, 0, 255, THRESH_BINARY | THRESH_OTSU): 255 above the threshold, else 0."""
    threshold = otsu_threshold(lines).view(-1, 1, 1, 1)
    return torch.where(lines.to(torch.int64) > threshold, 255, 0).to(torch.uint8)


def area_weights(source: int, target: int, device: torch.device) -> torch.Tensor:
    """(target, source) matrix of INTER_AREA weights: each output pixel averages the input span it covers,
    partially covered input pixels counting by the covered fraction."""
    scale = source / target
    starts = torch.arange(target, dtype=torch.float64, device=device) * scale
    edges = torch.arange(source + 1, dtype=torch.float64, device=device)
    left = torch.maximum(edges[:-1].unsqueeze(0), starts.unsqueeze(1))
    right = torch.minimum(edges[1:].unsqueeze(0), (starts + scale).unsqueeze(1))
    return (right - left).clamp(min=0) / scale


def resize_lines(lines: torch.Tensor, size: int) -> torch.Tensor:
    """Resize to size x size as cv2.resize does: INTER_AREA when shrinking, bilinear when enlarging."""
    _check_lines(lines)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    height, width = lines.shape[-2:]
    if (height, width) == (size, size):
        return lines
    values = lines.to(torch.float64)
    if size > min(height, width):
        out = F.interpolate(values, size=(size, size), mode="bilinear", align_corners=False)
        return out.round().clamp(0, 255).to(torch.uint8)
    if height == width == 2 * size:
        # OpenCV's fast 2x path averages in integers and rounds half up: (sum + 2) >> 2.
        return ((F.avg_pool2d(values, 2) * 4 + 2) / 4).floor().to(torch.uint8)
    rows = area_weights(height, size, lines.device)
    cols = area_weights(width, size, lines.device)
    out = rows @ values @ cols.T
    # The general path computes in floating point and rounds half to even (saturate_cast).
    return out.round().clamp(0, 255).to(torch.uint8)
