"""Decode any image file to 8-bit RGB by its content, never its name.

Pillow identifies the format from the bytes, reads the header without decoding pixels (so a
30000x30000 header is refused before a byte of it is allocated), applies the EXIF orientation, and
converts every mode a crawl meets (CMYK, palette, grey + alpha, RGBA, 16-bit) to RGB. Alpha is
composited over white, as line-art datasets assume a white page.

`read_input` reads one input file without ever blocking or reading what it need not: what is not a
regular file (a FIFO would block `open`) is rejected from its `fstat`, and a file larger than any image
within --max-pixels can be (`max_file_bytes`) is judged from its header alone.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps

from manifests.reasons import DECODE_ERROR, NOT_A_REGULAR_FILE, TOO_LARGE
from pipeline.prepare.rejected import Rejected

# We enforce our own pixel limit (`max_pixels`) before loading; Pillow's global guard would refuse
# or warn with a different threshold and a different message.
Image.MAX_IMAGE_PIXELS = None

_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # 90-degree rotations: width and height swap
_SRGB = ImageCms.createProfile("sRGB")
# The most bytes an image of --max-pixels pixels can take: 16-bit RGBA, uncompressed (8 bytes a pixel),
# plus room for metadata (EXIF, ICC profiles, thumbnails). A larger file is refused from its header.
BYTES_PER_PIXEL_BOUND = 8
METADATA_ALLOWANCE = 1 << 20
_FILE_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device", stat.S_IFDIR: "a folder"}


def max_file_bytes(max_pixels: int) -> int:
    """Files above this many bytes cannot hold an image within `max_pixels` (see BYTES_PER_PIXEL_BOUND)."""
    return max_pixels * BYTES_PER_PIXEL_BOUND + METADATA_ALLOWANCE


def check_pixels(width: int, height: int, max_pixels: int) -> None:
    """The decompression-bomb guard, from the header's size: raise Rejected(too_large) above `max_pixels`."""
    if width * height > max_pixels:
        raise Rejected(TOO_LARGE, f"{width}x{height} = {width * height:,} pixels > --max-pixels {max_pixels:,}")


def read_input(path: Path, max_pixels: int, row: dict) -> bytes:
    """The bytes of one input file, or Rejected: not a regular file, or (files above `max_file_bytes`)
    not an image or too large, decided from the header without reading the rest. Sets `source_bytes`
    (and, from a large file's header, its format and size) in `row`. OSError: it cannot be read."""
    # O_NONBLOCK: opening a FIFO for reading must not wait for a writer (it is refused just below).
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        mode = os.fstat(handle.fileno())
        if not stat.S_ISREG(mode.st_mode):
            kind = _FILE_KINDS.get(stat.S_IFMT(mode.st_mode), "not a regular file")
            raise Rejected(NOT_A_REGULAR_FILE, f"{kind}, not a regular file")
        row["source_bytes"] = mode.st_size
        if mode.st_size > max_file_bytes(max_pixels):
            _refuse_from_header(handle, mode.st_size, max_pixels, row)
        return handle.read()


def _refuse_from_header(handle: BinaryIO, size: int, max_pixels: int, row: dict) -> None:
    """A file too large for `max_pixels` is rejected from its first bytes: not an image, or too large."""
    try:
        image = Image.open(handle)  # reads the header only
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a header that is not an image's
        handle.seek(0)
        raise Rejected(DECODE_ERROR, describe_non_image(handle.read(1024), exc)) from None
    row.update(format=image.format, orig_width=image.size[0], orig_height=image.size[1])
    check_pixels(*image.size, max_pixels)
    bound = max_file_bytes(max_pixels)
    raise Rejected(TOO_LARGE, f"{size:,} bytes > {bound:,}, the most an image within --max-pixels {max_pixels:,} takes")


def open_image(data: bytes) -> Image.Image:
    """Identify and open the image header; raises Rejected(decode_error) for anything else."""
    if not data:
        raise Rejected(DECODE_ERROR, "empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - UnidentifiedImageError, SyntaxError from broken headers, ...
        raise Rejected(DECODE_ERROR, describe_non_image(data, exc)) from None


def describe_non_image(data: bytes, exc: Exception) -> str:
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head:
        return "an HTML document, not an image"
    try:
        data[:1024].decode("utf-8")
        return "text, not an image"
    except UnicodeDecodeError:
        pass
    return f"not a recognised image ({exc})"


def frame_count(image: Image.Image) -> int:
    return int(getattr(image, "n_frames", 1))


def load_rgb(image: Image.Image, data: bytes, draft_size: tuple[int, int] | None = None) -> tuple[np.ndarray, bool]:
    """Decode the first frame to an HxWx3 uint8 RGB array, EXIF-oriented; also says if it was turned 90 degrees.

    `draft_size` (in stored, not oriented, pixels) lets JPEG decoding downscale by 1/2, 1/4 or 1/8 in
    the DCT, as long as the result stays at least that large: large originals decode several times
    faster. Plain RGB and grey JPEGs (most of any crawl) are decoded by OpenCV, three times faster than
    through Pillow; everything else, and any JPEG that does not end in an EOI marker (truncated), goes
    through Pillow, which refuses truncated data. Orientation is read only after loading: for PNG,
    Pillow reads EXIF by decoding the whole file, which must never happen before the pixel-count check.
    """
    if image.format == "JPEG" and image.mode in ("RGB", "L") and _ends_with_eoi(data):
        turned = _orientation(image) in _TRANSPOSED_ORIENTATIONS  # JPEG EXIF is in the header
        flags = _reduced_decode_flag(image.size, draft_size)
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flags)  # applies the EXIF orientation too
        if bgr is not None:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), turned
    try:
        if draft_size is not None and image.format == "JPEG":
            image.draft(image.mode, draft_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # EXIF and palette warnings are noise here
            image.load()
            turned = _orientation(image) in _TRANSPOSED_ORIENTATIONS
            image = ImageOps.exif_transpose(image) or image
            return to_rgb8(image), turned
    except Rejected:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated data, broken chunks, bad Huffman tables...
        raise Rejected(DECODE_ERROR, f"corrupt or truncated image data ({exc})") from None


def _ends_with_eoi(data: bytes) -> bool:
    # 0xFFD9 cannot occur inside entropy-coded data (0xFF is byte-stuffed there), so a complete JPEG
    # ends with it, give or take trailing padding.
    return data.rstrip(b"\0\r\n ")[-2:] == b"\xff\xd9"


_REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4), (2, cv2.IMREAD_REDUCED_COLOR_2))


def _reduced_decode_flag(size: tuple[int, int], draft_size: tuple[int, int] | None) -> int:
    """The strongest DCT downscale whose result still covers draft_size (libjpeg rounds sizes up)."""
    if draft_size is not None:
        for factor, flag in _REDUCED_FLAGS:
            if all(-(-side // factor) >= want for side, want in zip(size, draft_size)):
                return flag
    return cv2.IMREAD_COLOR


def _orientation(image: Image.Image) -> int | None:
    try:
        return image.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - malformed EXIF: ignore the orientation rather than the image
        return None


def to_rgb8(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        return _over_white(np.asarray(image.convert("RGBA")))
    if mode.startswith("I") or mode == "F":
        return _grey_to_rgb(_high_depth_to_uint8(np.asarray(image), mode))
    if mode == "CMYK":
        return np.asarray(_cmyk_to_rgb(image))
    if mode in ("1", "L"):
        return _grey_to_rgb(np.asarray(image.convert("L")))
    return np.asarray(image.convert("RGB"))


def _over_white(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3].astype(np.uint16)
    alpha = rgba[..., 3:4].astype(np.uint16)
    return ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _high_depth_to_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """16-bit (or 32-bit int / float) grey to 8 bits, keeping the full range."""
    values = values.astype(np.float64)
    if mode.startswith("I;16"):
        full_scale = 65535.0
    elif mode == "F" and values.max(initial=0.0) <= 1.0:
        full_scale = 1.0
    else:  # "I" (32-bit) holds 16-bit PNG data in some Pillow versions, 8-bit data in others
        full_scale = 65535.0 if values.max(initial=0.0) > 255 else 255.0
    return np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def _cmyk_to_rgb(image: Image.Image) -> Image.Image:
    """Use the embedded ICC profile when there is one (print CMYK is far from naive inversion)."""
    icc = image.info.get("icc_profile")
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except Exception:  # noqa: BLE001 - an unusable profile: fall back to Pillow's plain conversion
            pass
    return image.convert("RGB")
