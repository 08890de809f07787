"""What a colouring request sends, decoded and checked: the sketch, its hint layer, a reference image.

Every problem the sender can fix is a `BadInput` carrying the HTTP status and a one-line message.
The file name and declared type are not trusted: the bytes say what the image is. Each image's
header is read first (Pillow opens lazily), so one over the pixel limit is refused with 413 before
any pixel is decoded: a decompression bomb costs a header read.

The work of one request is bounded by the model, not by the sketch: a sketch whose long side is over
`side` (the largest result served) is decoded at a reduced size where the codec allows it (JPEG's
DCT scaling through OpenCV's IMREAD_REDUCED_*), area-resized to `side`, and coloured and answered at
that size. Its hint layer follows with hint resampling (alpha max-pooled, colour the mean of the
given pixels), reduced strip by strip so a full-size layer never becomes one float array.
EXIF orientation is applied, as a browser draws the image and as `pipe colorize` reads it.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from train.inputs import resize_hint

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: a 6300 x 6300 sketch; larger ones get 413
EXIF_ORIENTATION = 0x0112
PNG_END = b"IEND\xaeB`\x82"  # the IEND chunk's type and CRC: the last 8 bytes of a whole PNG
PNG_TAIL_BYTES = 65536
STRIP_PIXELS = 2**22  # hint pixels reduced per step (a 64 MiB float strip)


class BadInput(Exception):
    """A request the sender can fix: `status` is the HTTP status to answer, the message says what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Header:
    """What an image file's header says: its stored size, format and whether it has transparency."""

    width: int
    height: int
    format: str | None
    has_alpha: bool
    orientation: int


@dataclass(frozen=True)
class Sketch:
    """A sketch as grey uint8 at the size it is coloured at, and the (upright) size it was sent at."""

    grey: np.ndarray
    height: int
    width: int

    @property
    def scaled(self) -> bool:
        return self.grey.shape != (self.height, self.width)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _limit_message(what: str, size: str, max_pixels: int) -> str:
    return f"{what} is {size}, over this server's limit of {max_pixels / 1e6:g} MP (pipe serve --max-pixels): send a smaller image"


def read_header(data: bytes, what: str, max_pixels: int) -> Header:
    """The image's header, without decoding its pixels; BadInput when it is no image or too large."""
    if not data:
        raise BadInput(400, f"{what} is empty: send an image file (PNG, JPEG, WebP, BMP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # this server's own limit is checked below
            with Image.open(io.BytesIO(data)) as image:
                orientation = image.getexif().get(EXIF_ORIENTATION, 1) if image.format == "JPEG" else 1
                header = Header(image.width, image.height, image.format, _has_alpha(image), orientation)
    except Image.DecompressionBombError:
        raise BadInput(413, _limit_message(what, f"over {2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP", max_pixels)) from None
    except UnidentifiedImageError:
        raise BadInput(400, f"{what} is not an image (PNG, JPEG, WebP, BMP, ...)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInput(400, f"{what} is a damaged or unsupported image: {exc}") from None
    pixels = header.width * header.height
    if pixels > max_pixels:
        raise BadInput(413, _limit_message(what, f"{header.width}x{header.height} ({pixels / 1e6:.0f} MP)", max_pixels))
    return header


def _open(data: bytes, what: str) -> Image.Image:
    """The first frame, decoded and upright (call after `read_header` has checked its size)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
            return ImageOps.exif_transpose(image) or image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise BadInput(400, f"{what} is a damaged or unsupported image: {exc}") from None


def fitted(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) scaled down so the long side is at most `side` (never up)."""
    scale = side / max(height, width)
    if scale >= 1:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def _reduction(header: Header, side: int) -> int:
    """The largest JPEG decoding reduction (1, 2, 4 or 8) that still leaves the long side at least `side`."""
    if header.format != "JPEG":
        return 1  # OpenCV decodes PNG at full size whatever it is asked; it is area-resized after
    long_side = max(header.width, header.height)
    return next((k for k in (8, 4, 2) if -(-long_side // k) >= side), 1)


REDUCED_GREY = {1: cv2.IMREAD_GRAYSCALE, 2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4, 8: cv2.IMREAD_REDUCED_GRAYSCALE_8}


def _grey_by_opencv(data: bytes, header: Header, side: int) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Grey pixels of an opaque PNG or JPEG, reduced while decoding where JPEG allows, and the upright
    size as sent; None where OpenCV cannot decode it (Pillow then says why)."""
    grey = cv2.imdecode(np.frombuffer(data, np.uint8), REDUCED_GREY[_reduction(header, side)])
    if grey is None:
        return None
    if header.format == "JPEG":  # reduced: the upright size comes from the header and its EXIF orientation
        turned = header.orientation in (5, 6, 7, 8)
        return grey, (header.width, header.height) if turned else (header.height, header.width)
    return grey, grey.shape[:2]


def _png_is_whole(data: bytes) -> bool:
    """Whether a PNG ends in its IEND chunk (some tools append a few bytes after it). A truncated one
    goes to Pillow, which says so, rather than to libpng, which writes its complaint to stderr."""
    return PNG_END in data[-PNG_TAIL_BYTES:]


def _grey_by_pillow(data: bytes) -> np.ndarray:
    """Grey pixels of any image Pillow reads; transparent parts become white paper."""
    image = _open(data, "sketch")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def decode_sketch(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, side: int = 2048) -> Sketch:
    """The sketch as grey uint8, its long side at most `side`, and the size it was sent at."""
    header = read_header(data, "sketch", max_pixels)
    by_opencv = header.format == "JPEG" or (header.format == "PNG" and _png_is_whole(data))
    opened = _grey_by_opencv(data, header, side) if by_opencv and not header.has_alpha else None
    if opened is None:
        grey = _grey_by_pillow(data)
        opened = grey, grey.shape[:2]
    grey, (height, width) = opened
    target = fitted(height, width, side)
    if grey.shape[:2] != target:
        grey = cv2.resize(grey, target[::-1], interpolation=cv2.INTER_AREA)
    return Sketch(np.ascontiguousarray(grey), height, width)


def _hint_tensor(rgba: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(rgba, order="C")).permute(2, 0, 1)[None].float().div(255)


def _hint_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].permute(1, 2, 0).mul(255).round().to(torch.uint8).numpy()


def _pad_to(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """`rgba` padded with "nothing given" (all zero) at the bottom and right to height x width."""
    if rgba.shape[:2] == (height, width):
        return rgba
    return np.pad(rgba, ((0, height - rgba.shape[0]), (0, width - rgba.shape[1]), (0, 0)))


def _block_reduced(rgba: np.ndarray, factor: int) -> np.ndarray:
    """RGBA shrunk by an integer `factor` with hint resampling, a strip of rows at a time (each
    factor x factor block pools on its own, so strips give what the whole layer would)."""
    height, width = -(-rgba.shape[0] // factor), -(-rgba.shape[1] // factor)
    rows = max(1, STRIP_PIXELS // (factor * factor * width))  # output rows per strip
    reduced = np.empty((height, width, 4), np.uint8)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        strip = _pad_to(rgba[top * factor : bottom * factor], (bottom - top) * factor, width * factor)
        reduced[top:bottom] = _hint_array(resize_hint(_hint_tensor(strip), (bottom - top, width)))
    return reduced


def shrink_hint(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """An RGBA hint layer at height x width (not larger than it), resampled as hints."""
    if rgba.shape[:2] == (height, width):
        return np.array(rgba, order="C")
    factor = min(rgba.shape[0] // height, rgba.shape[1] // width)
    if factor >= 2:
        rgba = _block_reduced(rgba, factor)
    return _hint_array(resize_hint(_hint_tensor(rgba), (height, width)))


def decode_hints(data: bytes, sketch: Sketch, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The hint layer as RGBA uint8 at the sketch's working size; it must have an alpha channel and
    the size the sketch was sent at."""
    header = read_header(data, "hints", max_pixels)
    if not header.has_alpha:
        raise BadInput(422, "hints have no alpha channel: send an RGBA PNG, opaque where a colour is given")
    if {header.width, header.height} != {sketch.width, sketch.height}:  # before decoding (EXIF may turn it)
        raise BadInput(422, f"hints are {header.width}x{header.height}, the sketch is {sketch.width}x{sketch.height}: send a hint layer of the sketch's size")
    image = _open(data, "hints")
    if image.size != (sketch.width, sketch.height):
        raise BadInput(422, f"hints are {image.width}x{image.height}, the sketch is {sketch.width}x{sketch.height}: send a hint layer of the sketch's size")
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    del image
    return shrink_hint(rgba, *sketch.grey.shape)


def check_reference(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """A reference image is checked from its header only: no served recipe reads one (palette recipes are refused)."""
    read_header(data, "reference", max_pixels)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 image."""
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()
