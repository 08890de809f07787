"""Decoding by content: EXIF orientation, modes, the OpenCV fast path against Pillow's."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from pipeline.prepare import decode
from manifests.reasons import DECODE_ERROR
from pipeline.prepare.rejected import Rejected
from tests.helpers import jpeg_with_orientation, picture


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    data = jpeg_with_orientation(picture(0, 800, 600), orientation)
    rgb, turned = decode.load_rgb(decode.open_image(data), data)
    reference = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert turned == (orientation >= 5)
    assert rgb.shape == reference.shape == ((800, 600, 3) if turned else (600, 800, 3))
    assert np.array_equal(rgb, reference)


def test_opencv_reduced_decode_covers_the_requested_size():
    data = jpeg_with_orientation(picture(1, 2000, 1500), 1)
    rgb, _ = decode.load_rgb(decode.open_image(data), data, draft_size=(683, 512))
    assert rgb.shape == (750, 1000, 3)  # 1/2 scale: 1/4 would give 375 < 512 rows


def test_jpeg_with_trailing_garbage_still_decodes():
    data = jpeg_with_orientation(picture(2), 1) + b"appended archive bytes" * 10
    rgb, _ = decode.load_rgb(decode.open_image(data), data)
    assert rgb.shape == (600, 700, 3)


@pytest.mark.parametrize(
    "mode",
    ["L", "LA", "P", "RGBA", "I;16", "1", "CMYK"],
)
def test_every_mode_becomes_rgb8(mode):
    source = Image.fromarray(picture(3, 64, 48))
    if mode == "I;16":  # a real 16-bit file spans 0-65535
        image = Image.fromarray(np.asarray(source.convert("L")).astype(np.uint16) * 257)
    else:
        image = source.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
    data = buffer.getvalue()
    rgb, _ = decode.load_rgb(decode.open_image(data), data)
    assert rgb.dtype == np.uint8 and rgb.shape == (48, 64, 3)
    if mode in ("L", "I;16", "LA"):
        grey = np.asarray(source.convert("L")).astype(int)
        assert np.abs(rgb[..., 0].astype(int) - grey).max() <= 1
        assert (rgb[..., 0] == rgb[..., 2]).all()


def test_sixteen_bit_grey_keeps_full_range():
    values = np.array([[0, 257 * 128, 65535]], np.uint16)
    image = Image.fromarray(values)  # mode I;16
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    data = buffer.getvalue()
    rgb, _ = decode.load_rgb(decode.open_image(data), data)
    assert rgb[0, :, 0].tolist() == [0, 128, 255]


def test_palette_transparency_goes_white():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    image.putpixel((0, 0), 1)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    data = buffer.getvalue()
    rgb, _ = decode.load_rgb(decode.open_image(data), data)
    assert rgb[0, 0].tolist() == [200, 10, 10]
    assert rgb[3, 3].tolist() == [255, 255, 255]


def test_unknown_bytes_are_a_decode_error():
    with pytest.raises(Rejected) as caught:
        decode.open_image(bytes(range(256)) * 4)
    assert caught.value.reason == DECODE_ERROR
    assert "not a recognised image" in caught.value.detail
