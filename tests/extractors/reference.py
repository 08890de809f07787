"""Straightforward one-image OpenCV/NumPy versions of the classic methods.

They are the yardstick for the batched PyTorch methods: the tests check agreement against them on
real illustrations, and `bench/extract.py` times them as the plain per-image loop. Each takes an RGB
uint8 (H, W, 3) array and returns a uint8 (H, W) array, black lines on white.
"""

from __future__ import annotations

import cv2
import numpy as np


def gray_reference(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def xdog_reference(rgb: np.ndarray, sigma: float, k: float, p: float, eps: float, phi: float) -> np.ndarray:
    luminance = gray_reference(rgb).astype(np.float32) / 255.0
    fine = cv2.GaussianBlur(luminance, (0, 0), sigma)
    coarse = cv2.GaussianBlur(luminance, (0, 0), sigma * k)
    sharpened = (1 + p) * fine - p * coarse
    lines = np.where(sharpened >= eps, 1.0, 1.0 + np.tanh(phi * (sharpened - eps)))
    return np.clip(np.round(lines * 255.0), 0, 255).astype(np.uint8)


def dilate_reference(rgb: np.ndarray, kernel_size: int) -> np.ndarray:
    dilated = cv2.dilate(rgb, np.ones((kernel_size, kernel_size), np.uint8))
    return cv2.cvtColor(255 - cv2.absdiff(dilated, rgb), cv2.COLOR_RGB2GRAY)


def canny_reference(rgb: np.ndarray, sigma: float, low: float, high: float) -> np.ndarray:
    smoothed = cv2.GaussianBlur(gray_reference(rgb), (0, 0), sigma)
    return 255 - cv2.Canny(smoothed, low, high)


def highpass_reference(rgb: np.ndarray, sigma: float) -> np.ndarray:
    colour = rgb.astype(np.float32)
    darker = np.clip((cv2.GaussianBlur(colour, (0, 0), sigma) - colour).max(axis=2), 0, None)
    peak = darker.max()
    normalized = darker / peak if peak > 0.5 else np.zeros_like(darker)
    return np.clip(np.round((1.0 - normalized) * 255.0), 0, 255).astype(np.uint8)


def sketchkeras_input_reference(rgb: np.ndarray, canvas: int = 512) -> np.ndarray:
    """sketchKeras's own preprocessing (helper.py of its repository), as (3, canvas, canvas) float64."""
    planes = []
    for channel in range(3):
        plane = np.ascontiguousarray(rgb[:, :, channel])
        blur = cv2.GaussianBlur(plane, (0, 0), 3)
        planes.append((plane.astype(int) - blur.astype(int)) / 128.0)
    light = np.stack(planes)
    light = light / np.max(light)
    padded = np.zeros((3, canvas, canvas), dtype=np.float64)
    padded[:, : rgb.shape[0], : rgb.shape[1]] = light
    return padded


def sketchkeras_output_reference(line: np.ndarray, mode: str) -> np.ndarray:
    """sketchKeras's post-processing of the channel-maximum network output (float (H, W))."""
    mat = line.astype(np.float64).copy()
    if mode == "enhanced":
        mat[mat < 0.1] = 0
    elif mode == "pured":
        mat[mat < 0.18] = 0
    mat = (1 - mat) * 255.0
    return np.clip(mat, 0, 255).astype(np.uint8)
