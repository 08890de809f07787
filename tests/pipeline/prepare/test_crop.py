"""Crop boxes and the final resize."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.prepare.crop import Box, center_box, crop_square, face_box, fit_and_pad, resize


def test_center_box_is_the_middle_square():
    assert center_box(1000, 600) == Box(200, 0, 600, 600)
    assert center_box(600, 1001) == Box(0, 200, 600, 600)


def test_face_box_widens_squares_and_stays_inside():
    # 100x80 face at (400, 300) in a 1000x800 image, widened 1.8 -> 180 px square around its centre (450, 340).
    assert face_box(Box(400, 300, 100, 80), 1000, 800, 1.8) == Box(360, 250, 180, 180)
    # Near the top-left corner: shifted inside, not shrunk.
    assert face_box(Box(0, 0, 100, 100), 1000, 800, 2.0) == Box(0, 0, 200, 200)
    # Near the bottom-right corner.
    assert face_box(Box(950, 750, 50, 50), 1000, 800, 3.0) == Box(850, 650, 150, 150)
    # Larger than the image's short side: shrunk to it.
    assert face_box(Box(300, 100, 500, 500), 1000, 600, 2.0) == Box(250, 0, 600, 600)


@pytest.mark.parametrize("side", [300, 512, 1500])
def test_crop_square_gives_size_by_size(side):
    image = np.random.default_rng(0).integers(0, 255, (side + 40, side, 3), dtype=np.uint8)
    out = crop_square(image, Box(0, 20, side, side), 512)
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8


def test_shrinking_uses_area_averaging():
    checker = np.indices((1024, 1024)).sum(0) % 2 * 255  # 1-pixel checkerboard
    image = np.repeat(checker[..., None], 3, 2).astype(np.uint8)
    out = resize(image, 512, 512)
    assert np.abs(out.astype(int) - 127.5).max() <= 1  # averaged, not aliased to black or white


def test_pad_keeps_everything_on_white():
    image = np.zeros((300, 900, 3), np.uint8)  # black, 3:1
    out = fit_and_pad(image, 512)
    assert out.shape == (512, 512, 3)
    rows_black = np.where((out < 10).all(axis=(1, 2)))[0]
    assert len(rows_black) in (170, 171) and (out[0] == 255).all() and (out[-1] == 255).all()
