"""The classic line methods as plain one-image OpenCV/NumPy calls: what `pipe extract` runs on a CPU.

On a CPU, OpenCV's hand-vectorized kernels beat the batched PyTorch ops (which are written for the
GPU) by several times, and running them inside the decode worker means no image crosses between
processes. The batched ops in `extractors/<method>.py` stay for CUDA. The two agree to the tolerances
stated in README (gray, dilate, canny bit-identical; xdog on all but 1e-4 of pixels; highpass within one
grey level); a ledger row records which made its file (`impl` in its params), and `apply_lines` runs a
recorded row again with the same implementation, so a row reproduces its file exactly on the same kind
of device.

Each method takes RGB uint8 (H, W, 3) and returns grey uint8 (H, W), black lines on white.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

# The value of `impl` in a line's recorded params when these functions made it.
IMPL = "opencv"


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def xdog(rgb: np.ndarray, sigma: float, k: float, p: float, eps: float, phi: float) -> np.ndarray:
    luminance = gray(rgb).astype(np.float32) / 255.0
    fine = cv2.GaussianBlur(luminance, (0, 0), sigma)
    coarse = cv2.GaussianBlur(luminance, (0, 0), sigma * k)
    sharpened = (1 + p) * fine - p * coarse
    lines = np.where(sharpened >= eps, 1.0, 1.0 + np.tanh(phi * (sharpened - eps)))
    return np.clip(np.round(lines * 255.0), 0, 255).astype(np.uint8)


def dilate(rgb: np.ndarray, kernel_size: int) -> np.ndarray:
    dilated = cv2.dilate(rgb, np.ones((kernel_size, kernel_size), np.uint8))
    return cv2.cvtColor(255 - cv2.absdiff(dilated, rgb), cv2.COLOR_RGB2GRAY)


def canny(rgb: np.ndarray, sigma: float, low: float, high: float) -> np.ndarray:
    smoothed = cv2.GaussianBlur(gray(rgb), (0, 0), sigma)
    return 255 - cv2.Canny(smoothed, low, high)


def highpass(rgb: np.ndarray, sigma: float) -> np.ndarray:
    colour = rgb.astype(np.float32)
    difference = cv2.GaussianBlur(colour, (0, 0), sigma) - colour
    # The maximum over channels as two element-wise maxima: the same values as .max(axis=2), whose
    # reduction over a 3-long last axis costs several times the blur.
    darker = np.maximum(np.maximum(difference[..., 0], difference[..., 1]), difference[..., 2])
    np.maximum(darker, 0, out=darker)
    peak = darker.max()
    normalized = darker / peak if peak > 0.5 else np.zeros_like(darker)
    return np.clip(np.round((1.0 - normalized) * 255.0), 0, 255).astype(np.uint8)


FORMS: dict[str, Callable[..., np.ndarray]] = {"xdog": xdog, "dilate": dilate, "canny": canny, "highpass": highpass, "gray": gray}


def post_process(lines: np.ndarray, size: int | None, equalize: bool, binarize: str | None) -> np.ndarray:
    """Resize (INTER_AREA shrinking, bilinear enlarging), equalize, Otsu: the calls the PyTorch ops match."""
    if size and lines.shape != (size, size):
        shrinking = size <= min(lines.shape)
        lines = cv2.resize(lines, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if equalize:
        lines = cv2.equalizeHist(lines)
    if binarize == "otsu":
        lines = cv2.threshold(lines, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)[1]
    elif binarize:
        raise ValueError(f"unknown binarization {binarize!r} (only 'otsu')")
    return lines


def extract(method: str, rgb: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """One image's lines from its recorded params (the method's options plus size/equalize/binarize)."""
    options = {k: v for k, v in params.items() if k not in ("size", "equalize", "binarize", "impl")}
    lines = FORMS[method](np.ascontiguousarray(rgb), **options)
    return post_process(lines, params.get("size"), bool(params.get("equalize")), params.get("binarize"))
