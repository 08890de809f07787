"""Line post-processing against OpenCV: equalizeHist and Otsu exactly, area resizing exactly at 2x."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from extractors.dilate import extract_dilate
from extractors.highpass import extract_highpass
from extractors.methods import apply_lines, post_process
from extractors.postprocess import binarize_otsu, equalize_histogram, otsu_threshold, resize_lines
from tests.helpers import picture


def _lines() -> torch.Tensor:
    images = torch.stack([torch.from_numpy(picture(seed, 256, 256)).permute(2, 0, 1) for seed in range(4)])
    return torch.cat([extract_dilate(images, 5), extract_highpass(images)])


def test_equalization_matches_cv2_equalizehist():
    lines = _lines()
    ours = equalize_histogram(lines)
    for index in range(lines.shape[0]):
        assert np.array_equal(ours[index, 0].numpy(), cv2.equalizeHist(lines[index, 0].numpy()))
    # Equalized lines use the whole range: the darkest level present becomes 0, the lightest 255.
    assert int(ours.min()) == 0 and int(ours.max()) == 255


def test_otsu_matches_cv2_threshold():
    lines = _lines()
    thresholds = otsu_threshold(lines)
    binary = binarize_otsu(lines)
    for index in range(lines.shape[0]):
        level, theirs = cv2.threshold(lines[index, 0].numpy(), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        assert int(thresholds[index]) == int(level)
        assert np.array_equal(binary[index, 0].numpy(), theirs)
    assert set(torch.unique(binary).tolist()) == {0, 255}


def test_constant_image_is_left_alone():
    flat = torch.full((1, 1, 32, 32), 200, dtype=torch.uint8)
    assert torch.equal(equalize_histogram(flat), torch.from_numpy(cv2.equalizeHist(flat[0, 0].numpy()))[None, None])
    # OpenCV's Otsu answers 0 for one level, so a blank page stays blank (255), not black.
    _, theirs = cv2.threshold(flat[0, 0].numpy(), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    assert torch.equal(binarize_otsu(flat)[0, 0], torch.from_numpy(theirs)) and int(theirs.min()) == 255


def test_area_resize_matches_opencv():
    lines = _lines()
    for size in (128, 64, 100, 77):
        ours = resize_lines(lines, size)
        for index in range(lines.shape[0]):
            theirs = cv2.resize(lines[index, 0].numpy(), (size, size), interpolation=cv2.INTER_AREA)
            diff = np.abs(ours[index, 0].numpy().astype(int) - theirs)
            if 256 % size == 0:
                assert diff.max() == 0  # integer factors: exact
            else:  # fractional: float sums in another order may round the odd pixel the other way
                assert diff.max() <= 1 and (diff > 0).mean() <= 1e-2


def test_post_processing_runs_in_order_and_apply_lines_records_it():
    images = torch.stack([torch.from_numpy(picture(seed, 256, 256)).permute(2, 0, 1) for seed in range(2)])
    params = [{"kernel_size": 4, "size": 128, "equalize": True, "binarize": "otsu"}, {"kernel_size": 5, "size": None, "equalize": False, "binarize": None}]
    # Different post-processing per sample is allowed; outputs then differ in size, so run them one by one.
    first = apply_lines("dilate", images[:1], params[:1])
    expected = binarize_otsu(equalize_histogram(resize_lines(extract_dilate(images[:1], 4), 128)))
    assert torch.equal(first, expected)
    second = apply_lines("dilate", images[1:], params[1:])
    assert torch.equal(second, extract_dilate(images[1:], 5))
    with pytest.raises(ValueError, match="binarization"):
        post_process(second, None, False, "sauvola")
