"""How images are stored in a dataset: PNG bytes through OpenCV, with an optional zlib level; JPEG
for the shard members that may be lossy; and the RGB decoding every stage reads them back with."""

from __future__ import annotations

import cv2
import numpy as np

try:  # libspng: about 1.7x OpenCV's libpng on 8-bit RGB PNGs, the same pixels (Linux x86-64 wheels)
    import pyspng
except ImportError:  # another platform: OpenCV alone
    pyspng = None

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode_rgb(data: bytes | np.ndarray) -> np.ndarray | None:
    """RGB uint8 (H, W, 3) of encoded image bytes, the pixels cv2.imdecode(IMREAD_COLOR) gives with
    the channels swapped; None when they do not decode. 8-bit RGB PNGs (what pipe writes) go through
    libspng when pyspng is installed; everything else (other PNG layouts, JPEG, damaged files) through
    OpenCV, which decodes straight to RGB from 4.11 on."""
    buffer = np.frombuffer(data, np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if pyspng is not None and buffer[:8].tobytes() == PNG_SIGNATURE:
        try:
            image = pyspng.load(buffer.tobytes() if not isinstance(data, bytes) else data)
        except Exception:  # noqa: BLE001 - damaged: OpenCV decides (and usually says None)
            image = None
        if image is not None and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
            return image
    if hasattr(cv2, "IMREAD_COLOR_RGB"):
        return cv2.imdecode(buffer, cv2.IMREAD_COLOR_RGB)
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG bytes (OpenCV's libjpeg) of a grey or BGR uint8 array. Colour keeps full-resolution
    chroma (4:4:4): the default 4:2:0 halves it, which smears colour across the line art's sharp edges
    (on illustrations, q95 4:4:4 is about 3 dB closer to the original than q95 4:2:0)."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    return encoded.tobytes()
