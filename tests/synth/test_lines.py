"""Line augmentations: method choice by weight, the grey share, equalization and the x*r + 1 - r jitter."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import stats

from synth.lines import GRAY_SOURCE, LineAugment, apply_line_augment, draw_line_augment, parse_line_weights
from tests.synth.stats import ALPHA, assert_share


def test_methods_are_drawn_by_weight_and_grey_by_its_share():
    augment = LineAugment(parse_line_weights("xdog=3,dilate=1"), gray_share=0.2)
    draws = [draw_line_augment(np.random.default_rng(i), augment, {"xdog", "dilate"}) for i in range(5000)]
    sources = [d["source"] for d in draws]
    assert_share(sources.count(GRAY_SOURCE), len(sources), 0.2, "grey share")
    lines = [s for s in sources if s != GRAY_SOURCE]
    assert_share(lines.count("xdog"), len(lines), 0.75, "xdog weight")
    jitter = np.array([d["jitter"] for d in draws])
    assert jitter.min() >= 0.7 and jitter.max() <= 1.0
    assert stats.kstest(jitter, stats.uniform(0.7, 0.3).cdf).pvalue > ALPHA


def test_only_extracted_methods_are_drawn():
    augment = LineAugment(parse_line_weights("xdog,dilate"))
    assert {draw_line_augment(np.random.default_rng(i), augment, {"dilate"})["source"] for i in range(50)} == {"dilate"}
    with pytest.raises(ValueError, match="was extracted"):
        draw_line_augment(np.random.default_rng(0), augment, {"canny"})
    with_gray = LineAugment(parse_line_weights("xdog"), gray_share=0.1)
    assert draw_line_augment(np.random.default_rng(0), with_gray, set())["source"] == GRAY_SOURCE


def test_jitter_is_x_r_plus_1_minus_r_and_equalize_matches_opencv():
    ramp = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    out = apply_line_augment(ramp, [{"source": "xdog", "equalize": False, "jitter": 0.8}])
    expected = np.round(np.arange(256) / 255 * 0.8 + 0.2, 12) * 255
    assert np.abs(out.flatten().numpy() - expected).max() <= 0.5 + 1e-9
    assert out.min() == 51 and out.max() == 255  # black strokes lightened to 1 - r, white stays white
    rng = np.random.default_rng(0)
    lines = rng.integers(100, 200, size=(1, 1, 32, 32), dtype=np.uint8)
    equalized = apply_line_augment(torch.from_numpy(lines), [{"source": "xdog", "equalize": True, "jitter": 1.0}])
    assert np.array_equal(equalized[0, 0].numpy(), cv2.equalizeHist(lines[0, 0]))


def test_bad_weights_and_shares_are_clear_errors():
    with pytest.raises(ValueError, match="bad weight"):
        parse_line_weights("xdog=heavy")
    with pytest.raises(ValueError, match="must be > 0"):
        parse_line_weights("xdog=0")
    with pytest.raises(ValueError, match="gray share"):
        LineAugment((("xdog", 1.0),), gray_share=1.5)
    with pytest.raises(ValueError, match="jitter"):
        LineAugment((("xdog", 1.0),), min_jitter=0)
