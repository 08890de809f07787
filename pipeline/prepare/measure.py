"""Image measurements that filters and the ledger use: colour, brightness, perceptual hash."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Colour statistics are measured on a regular grid of about this many pixels per side: means,
# spreads and shares barely move, and the cost stops growing with the image.
SAMPLE_SIDE = 256
# The perceptual hash (Zauner 2010; the "pHash" of hackerfactor.com, as in the imagehash package):
# 32x32 grey image, 2-D DCT, the 8x8 lowest frequencies compared with their median.
_PHASH_SIDE = 32
_PHASH_BITS_SIDE = 8


@dataclass(frozen=True)
class ColorStats:
    # Hasler & Suesstrunk (2003) colourfulness M: about 0 for grey, 15 "slightly", 59 "highly", 109 "extremely".
    colorfulness: float
    # Share of pixels whose chroma (max - min of R, G, B, 0-255) is above the chroma threshold.
    color_fraction: float
    # Mean Rec. 601 luma, 0-255.
    brightness: float


def sample_pixels(rgb: np.ndarray, side: int = SAMPLE_SIDE) -> np.ndarray:
    """Every k-th pixel in both directions, k chosen so the long side keeps about `side` pixels."""
    step = max(1, max(rgb.shape[:2]) // side)
    return rgb[::step, ::step]


def measure_colors(rgb: np.ndarray, chroma_threshold: int) -> ColorStats:
    # Per-channel planes, not reductions over a length-3 axis: numpy is slow at the latter.
    red, green, blue = (rgb[..., channel].astype(np.float32) for channel in range(3))
    chroma = np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)
    rg = red - green
    yb = 0.5 * (red + green) - blue
    return ColorStats(
        colorfulness=float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())),
        color_fraction=float(np.count_nonzero(chroma > chroma_threshold) / chroma.size),
        brightness=float((0.299 * red + 0.587 * green + 0.114 * blue).mean()),
    )


def perceptual_hash(rgb: np.ndarray) -> str:
    """64-bit DCT perceptual hash as 16 hex digits, bits in row-major order (imagehash's layout)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (_PHASH_SIDE, _PHASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:_PHASH_BITS_SIDE, :_PHASH_BITS_SIDE]
    bits = (low > np.median(low)).ravel()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming_distance(hash_a: str, hash_b: str) -> int:
    return (int(hash_a, 16) ^ int(hash_b, 16)).bit_count()
