"""Colour statistics and the perceptual hash."""

from __future__ import annotations

import cv2
import imagehash
import numpy as np
from PIL import Image

from pipeline.prepare.measure import hamming_distance, measure_colors, perceptual_hash, sample_pixels
from tests.helpers import picture


def test_hasler_colourfulness_of_known_images():
    grey = np.full((64, 64, 3), 128, np.uint8)
    assert measure_colors(grey, 32).colorfulness == 0.0
    # Half pure red, half pure green: rg = +-255 (std 255, mean 0), yb = 127.5 (std 0) -> M = 255 + 0.3 * 127.5.
    split = np.zeros((64, 64, 3), np.uint8)
    split[:, :32, 0] = 255
    split[:, 32:, 1] = 255
    assert abs(measure_colors(split, 32).colorfulness - (255 + 0.3 * 127.5)) < 1e-3


def test_color_fraction_and_brightness():
    image = np.full((10, 10, 3), 200, np.uint8)
    image[:3, :, :] = (255, 40, 40)  # 30 of 100 pixels with chroma 215
    stats = measure_colors(image, chroma_threshold=32)
    assert stats.color_fraction == 0.3
    expected = 0.7 * 200 + 0.3 * (0.299 * 255 + 0.587 * 40 + 0.114 * 40)
    assert abs(stats.brightness - expected) < 1e-3


def test_sample_pixels_keeps_about_the_requested_side():
    assert sample_pixels(np.zeros((2048, 1024, 3), np.uint8)).shape == (256, 128, 3)
    small = np.zeros((100, 80, 3), np.uint8)
    assert sample_pixels(small) is not small and sample_pixels(small).shape == small.shape


def test_phash_agrees_with_imagehash():
    """Same algorithm as imagehash.phash; only the 32x32 resampling filter differs."""
    distances = []
    for seed in range(12):
        rgb = picture(seed, 512, 512)
        distances.append(hamming_distance(perceptual_hash(rgb), str(imagehash.phash(Image.fromarray(rgb)))))
    assert np.mean(distances) <= 1.5 and max(distances) <= 4


def test_phash_is_robust_to_recompression_and_tells_pictures_apart():
    rgb = picture(0, 512, 512)
    recompressed = cv2.imdecode(cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
    assert hamming_distance(perceptual_hash(rgb), perceptual_hash(recompressed)) <= 2
    others = [hamming_distance(perceptual_hash(rgb), perceptual_hash(picture(seed, 512, 512))) for seed in range(1, 30)]
    assert min(others) > 8  # well clear of the default near-duplicate distance (4)
