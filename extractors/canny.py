"""Canny edges as line art (the CS229 line-art project's recipe): Gaussian smoothing, then Canny, inverted.

The edge detector follows OpenCV's cv2.Canny step by step: 3x3 Sobel with replicated borders, L1
gradient magnitude, non-maximum suppression with OpenCV's fixed-point direction sectors and tie
rules, double threshold, and hysteresis (8-connected growth from strong edges through weak ones).
The smoothing is OpenCV's bit-exact 8-bit Gaussian, so the whole method matches OpenCV pixel for pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from extractors.ops import check_batch, check_uint8_rgb, gaussian_blur_uint8, rgb_to_gray_uint8

SIGMA = 2.5
LOW = 20.0
HIGH = 50.0

# tan(22.5 deg) in OpenCV's 15-bit fixed point (see modules/imgproc/src/canny.cpp).
_SHIFT = 15
_TG22 = int(0.4142135623730950488016887242097 * (1 << _SHIFT) + 0.5)


def canny_edges(gray: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Edges (bool, B,1,H,W) of an integer-valued grey image (any dtype, 0-255), as cv2.Canny(gray, low, high)."""
    check_batch(gray, channels=1, name="gray")
    low, high = sorted((low, high))
    low_i, high_i = math.floor(low), math.floor(high)
    height, width = gray.shape[-2:]
    padded = F.pad(gray.to(torch.float32), (1, 1, 1, 1), mode="replicate").to(torch.int32)

    def at(dy: int, dx: int) -> torch.Tensor:
        return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    magnitude = gx.abs() + gy.abs()

    # Neighbours outside the image count as magnitude 0, as in OpenCV's padded magnitude rows.
    m = F.pad(magnitude, (1, 1, 1, 1), value=0)

    def near(dy: int, dx: int) -> torch.Tensor:
        return m[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    ax, ay = gx.abs(), gy.abs() << _SHIFT
    tg22x = ax * _TG22
    tg67x = tg22x + (ax << (_SHIFT + 1))
    horizontal = ay < tg22x
    vertical = ~horizontal & (ay > tg67x)
    diagonal = ~horizontal & ~vertical
    opposite_signs = (gx ^ gy) < 0
    keep_horizontal = (magnitude > near(0, -1)) & (magnitude >= near(0, 1))
    keep_vertical = (magnitude > near(-1, 0)) & (magnitude >= near(1, 0))
    # Sign s = -1 (opposite signs) compares up-right with down-left, s = +1 up-left with down-right.
    keep_diag_neg = (magnitude > near(-1, 1)) & (magnitude > near(1, -1))
    keep_diag_pos = (magnitude > near(-1, -1)) & (magnitude > near(1, 1))
    keep_diagonal = torch.where(opposite_signs, keep_diag_neg, keep_diag_pos)
    local_max = (horizontal & keep_horizontal) | (vertical & keep_vertical) | (diagonal & keep_diagonal)

    candidate = local_max & (magnitude > low_i)
    strong = candidate & (magnitude > high_i)
    return _hysteresis(strong, candidate)


def _hysteresis(strong: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    """Candidate pixels 8-connected to a strong one (OpenCV's hysteresis), by labelling components.

    Connected-component labelling by hooking and pointer jumping: every candidate starts as its own
    component, labelled with its pixel index. Each round, every component takes the smallest label
    found next to any of its pixels, and labels are then followed as pointers (the label of a label)
    until they settle, which merges whole chains of components at once. A few rounds label even long
    winding edges, where growing one pixel per step would take hundreds. A component is kept when
    any of its pixels is strong.
    """
    batch, _, height, width = candidate.shape
    count = height * width
    device = candidate.device
    # max_pool2d wants floats; pixel indices are exact in float32 below 2^24.
    pool_dtype = torch.float32 if count < (1 << 24) else torch.float64
    none = count  # the label of non-candidates, one past the last pixel
    inside = candidate.reshape(batch, count)
    labels = torch.where(inside, torch.arange(count, device=device).expand(batch, count), none)
    sentinel = torch.full((batch, 1), none, device=device, dtype=torch.int64)
    while True:
        image = labels.view(batch, 1, height, width).to(pool_dtype)
        nearest = (-F.max_pool2d(-image, kernel_size=3, stride=1, padding=1)).view(batch, count).to(torch.int64)
        nearest = torch.where(inside, nearest, none)
        hooked = torch.full((batch, count + 1), none, device=device, dtype=torch.int64)
        hooked.scatter_reduce_(1, labels, nearest, reduce="amin", include_self=True)
        merged = hooked.gather(1, labels)
        while True:
            pointed = torch.cat([merged, sentinel], dim=1).gather(1, merged)
            jumped = torch.minimum(merged, pointed)
            if torch.equal(jumped, merged):
                break
            merged = jumped
        if torch.equal(merged, labels):
            break
        labels = merged
    has_strong = torch.zeros(batch, count + 1, dtype=torch.bool, device=device)
    has_strong.scatter_(1, torch.where(strong.reshape(batch, count), labels, none), True)
    has_strong[:, none] = False
    return has_strong.gather(1, labels).view_as(candidate)


def extract_canny(images: torch.Tensor, sigma=SIGMA, low: float = LOW, high: float = HIGH) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> uint8 lines (B,1,H,W): black (0) edges on white (255)."""
    check_uint8_rgb(images)
    smoothed = gaussian_blur_uint8(rgb_to_gray_uint8(images), sigma)
    edges = canny_edges(smoothed, low, high)
    return torch.where(edges, 0, 255).to(torch.uint8)
