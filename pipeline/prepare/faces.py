"""Anime-face detection with OpenCV's CascadeClassifier and nagadomi's lbpcascade_animeface model."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import PipeError
from pipeline.prepare.crop import Box

CASCADE_HELP = (
    "the anime-face cascade is lbpcascade_animeface.xml from github.com/nagadomi/lbpcascade_animeface "
    "(MIT licence); download it and pass its path with --face-cascade"
)


@dataclass(frozen=True)
class FaceDetectorConfig:
    cascade: Path
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 24
    # Larger images are searched on a copy scaled to this long side (boxes are scaled back).
    max_side: int = 2048


def load_cascade(path: Path) -> cv2.CascadeClassifier:
    """Load and check the cascade file; a clear PipeError if it is missing or not a cascade."""
    if not path.is_file():
        raise PipeError(f"face cascade not found: {path}; {CASCADE_HELP}")
    if not hasattr(cv2, "CascadeClassifier"):
        raise PipeError("this OpenCV has no CascadeClassifier (OpenCV 5 removed it): install opencv-python-headless<5")
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise PipeError(f"{path} is not an OpenCV cascade file; {CASCADE_HELP}")
    return cascade


@functools.lru_cache(maxsize=4)
def _cached_cascade(path: str) -> cv2.CascadeClassifier:
    return load_cascade(Path(path))


def detect_faces(rgb: np.ndarray, config: FaceDetectorConfig) -> list[Box]:
    """Face boxes in the image's pixel coordinates, largest first (ties: top-left first)."""
    height, width = rgb.shape[:2]
    scale = min(1.0, config.max_side / max(height, width))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    found = _cached_cascade(str(config.cascade)).detectMultiScale(
        grey,
        scaleFactor=config.scale_factor,
        minNeighbors=config.min_neighbors,
        minSize=(config.min_size, config.min_size),
    )
    boxes = [Box(*(int(v) for v in box)).scaled(1 / scale) for box in found]
    return sorted(boxes, key=lambda b: (-b.area, b.y, b.x))
