"""Image measurements that filters and the ledger use: colour, brightness, perceptual hash."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import imagehash
import numpy as np
from PIL import Image

# Measurements run on a small copy: the statistics barely move and the cost drops a hundredfold.
MEASURE_SIDE = 256


@dataclass(frozen=True)
class ColorStats:
    # Hasler & Suesstrunk (2003) colourfulness M: about 0 for grey, 15 "slightly", 59 "highly", 109 "extremely".
    colorfulness: float
    # Share of pixels whose chroma (max - min of R, G, B, 0-255) is above the chroma threshold.
    color_fraction: float
    # Mean Rec. 601 luma, 0-255.
    brightness: float


def thumbnail(rgb: np.ndarray, max_side: int = MEASURE_SIDE) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def measure_colors(rgb: np.ndarray, chroma_threshold: int) -> ColorStats:
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    red, green, blue = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    colorfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    chroma = pixels.max(axis=1) - pixels.min(axis=1)
    color_fraction = float(np.mean(chroma > chroma_threshold))
    brightness = float(np.mean(0.299 * red + 0.587 * green + 0.114 * blue))
    return ColorStats(colorfulness=colorfulness, color_fraction=color_fraction, brightness=brightness)


def perceptual_hash(rgb: np.ndarray) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits."""
    return str(imagehash.phash(Image.fromarray(rgb)))


def hamming_distance(hash_a: str, hash_b: str) -> int:
    return (int(hash_a, 16) ^ int(hash_b, 16)).bit_count()
