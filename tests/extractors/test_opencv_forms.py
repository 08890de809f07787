"""The OpenCV forms `pipe extract` runs on a CPU, against the formulas they are written to compute.

Rewriting a form for speed must not change a single pixel: ledger rows made before the rewrite record
`impl: opencv`, and running them again must give their files back.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from extractors import opencv_forms
from tests.helpers import REAL_DATA, picture


def _highpass_as_written(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Highpass read straight off its definition: per channel blur minus image, maximum over channels
    (NumPy's reduction), clipped at 0, divided by the peak, inverted."""
    colour = rgb.astype(np.float32)
    darker = np.clip((cv2.GaussianBlur(colour, (0, 0), sigma) - colour).max(axis=2), 0, None)
    peak = darker.max()
    normalized = darker / peak if peak > 0.5 else np.zeros_like(darker)
    return np.clip(np.round((1.0 - normalized) * 255.0), 0, 255).astype(np.uint8)


def _images() -> list[np.ndarray]:
    images = [picture(seed, 300 + 37 * seed, 280) for seed in range(4)]
    images += [cv2.imread(str(path), cv2.IMREAD_COLOR_RGB) for path in sorted((REAL_DATA / "real" / "color").glob("*.jpg"))[:4]]
    noise = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    return [*images, noise, np.full((40, 50, 3), 200, np.uint8)]


@pytest.mark.parametrize("sigma", [1.0, 3.0, 4.5])
def test_highpass_form_equals_its_definition_pixel_for_pixel(sigma):
    for rgb in _images():
        assert np.array_equal(opencv_forms.highpass(rgb, sigma), _highpass_as_written(rgb, sigma))


def test_highpass_of_a_flat_image_is_blank_paper():
    assert (opencv_forms.highpass(np.full((32, 32, 3), 90, np.uint8), 3.0) == 255).all()
