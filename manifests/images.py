"""How images are stored in a dataset: PNG bytes through OpenCV, with an optional zlib level."""

from __future__ import annotations

import cv2
import numpy as np


def encode_png(image: np.ndarray, compression: int | None = None) -> bytes:
    """PNG bytes of a uint8 array as OpenCV orders channels (grey, BGR or BGRA); `compression` 0-9,
    None for OpenCV's own default."""
    params = [] if compression is None else [cv2.IMWRITE_PNG_COMPRESSION, compression]
    ok, encoded = cv2.imencode(".png", image, params)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return encoded.tobytes()


def encode_rgb_png(rgb: np.ndarray, compression: int | None = None) -> bytes:
    """PNG bytes of an RGB uint8 (H, W, 3) array."""
    return encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), compression)
