"""What a colouring request sends, decoded and checked: the sketch, its hint layer, a reference image.

Every problem the sender can fix is a `BadInput` carrying the HTTP status and a one-line message.
Images are decoded with Pillow from the bytes (the file name and declared type are not trusted),
with EXIF orientation applied, as a browser draws them and as `pipe colorize` reads them.
"""

from __future__ import annotations

import io
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Refused from the header, before decoding: 64 megapixels is a 8000 x 8000 sketch.
MAX_PIXELS = 64_000_000


class BadInput(Exception):
    """A request the sender can fix: `status` is the HTTP status to answer, the message says what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _open(data: bytes, what: str) -> Image.Image:
    """The first frame of an image file, decoded and upright; BadInput when it is not one."""
    if not data:
        raise BadInput(400, f"{what} is empty: send an image file (PNG, JPEG, WebP, BMP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise BadInput(413, f"{what} is {width}x{height} ({width * height / 1e6:.0f} MP), over the {MAX_PIXELS / 1e6:.0f} MP this server takes")
            image.load()
            return ImageOps.exif_transpose(image) or image
    except BadInput:
        raise
    except UnidentifiedImageError:
        raise BadInput(400, f"{what} is not an image (PNG, JPEG, WebP, BMP, ...)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadInput(400, f"{what} is a damaged or unsupported image: {exc}") from None


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def decode_sketch(data: bytes) -> np.ndarray:
    """The sketch as grey uint8 (H, W); transparent parts become white paper."""
    image = _open(data, "sketch")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8).copy()


def decode_hints(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    """The hint layer as RGBA uint8 (H, W, 4), which must have an alpha channel and the sketch's `shape`."""
    image = _open(data, "hints")
    if not _has_alpha(image):
        raise BadInput(422, f"hints have no alpha channel ({image.mode}): send an RGBA PNG, opaque where a colour is given")
    height, width = shape
    if image.size != (width, height):
        raise BadInput(422, f"hints are {image.width}x{image.height}, the sketch is {width}x{height}: send a hint layer of the sketch's size")
    return np.asarray(image.convert("RGBA"), dtype=np.uint8).copy()


def decode_reference(data: bytes) -> np.ndarray:
    """A reference image as RGB uint8 (H, W, 3)."""
    return np.asarray(_open(data, "reference").convert("RGB"), dtype=np.uint8).copy()


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()
