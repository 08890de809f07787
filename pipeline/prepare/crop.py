"""Crop boxes (centre square, padded whole image, widened face) and the final resize to size x size."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WHITE = (255, 255, 255)


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def scaled(self, factor: float) -> Box:
        return Box(round(self.x * factor), round(self.y * factor), round(self.w * factor), round(self.h * factor))


def center_box(width: int, height: int) -> Box:
    side = min(width, height)
    return Box((width - side) // 2, (height - side) // 2, side, side)


def face_box(face: Box, width: int, height: int, widen: float) -> Box:
    """Square box around a face, `widen` times its larger side (to take in the hair), kept inside the image.

    The square is shifted, not shrunk, to stay inside the image; only when it is larger than the
    image's short side is it shrunk to that side.
    """
    side = min(round(max(face.w, face.h) * widen), width, height)
    center_x = face.x + face.w / 2
    center_y = face.y + face.h / 2
    x = min(max(round(center_x - side / 2), 0), width - side)
    y = min(max(round(center_y - side / 2), 0), height - side)
    return Box(x, y, side, side)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area interpolation to shrink (no aliasing), Lanczos to enlarge."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrinking = width * height < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4)


def crop_square(rgb: np.ndarray, box: Box, size: int) -> np.ndarray:
    return resize(rgb[box.y : box.y + box.h, box.x : box.x + box.w], size, size)


def fit_and_pad(rgb: np.ndarray, size: int) -> np.ndarray:
    """The whole image scaled so its long side is `size`, centred on a white square: nothing is lost."""
    height, width = rgb.shape[:2]
    scale = size / max(height, width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    scaled = resize(rgb, new_w, new_h)
    left, top = (size - new_w) // 2, (size - new_h) // 2
    return cv2.copyMakeBorder(
        scaled, top, size - new_h - top, left, size - new_w - left, cv2.BORDER_CONSTANT, value=WHITE
    )
