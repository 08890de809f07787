"""Straightforward one-image OpenCV/NumPy versions of the classic methods.

They are the yardstick for the batched PyTorch methods: the tests check agreement against them on
real illustrations, and `bench/extract.py` times them as the plain per-image loop. The classic ones
are `extractors.opencv_forms`, which `pipe extract` itself runs on a CPU. Each takes an RGB
uint8 (H, W, 3) array and returns a uint8 (H, W) array, black lines on white.
"""

from __future__ import annotations

import cv2
import numpy as np

from extractors import opencv_forms


# The product's own OpenCV forms (what `pipe extract` runs on a CPU) are the plain per-image versions.
gray_reference = opencv_forms.gray
xdog_reference = opencv_forms.xdog
dilate_reference = opencv_forms.dilate
canny_reference = opencv_forms.canny
highpass_reference = opencv_forms.highpass


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
