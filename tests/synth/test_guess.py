"""Guessed hints (Fu et al.): colours drawn from a histogram's top bins, in proportion to their counts,
placed as the histogram scheme places its patches, never looking at the image they are for."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from synth.common import bin_color, color_histogram
from synth.guess import BINS, draw_guessed_hints, guess_colours, guess_hints, histogram_of, paint_guessed_hints
from synth.hints.histogram import MAX_PATCHES, MAX_SIDE, MIN_PATCHES, MIN_SIDE

REAL_COLOR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real" / "color"


def striped(colours: list[tuple[int, int, int]], widths: list[int], height: int = 32) -> torch.Tensor:
    """uint8 (3, H, sum(widths)): vertical stripes of flat colours."""
    image = np.concatenate([np.full((height, width, 3), colour, np.uint8) for colour, width in zip(colours, widths)], axis=1)
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def drawn_colours(params: list[dict]) -> list[tuple[int, ...]]:
    return [tuple(patch["color"]) for sample in params for patch in sample["patches"]]


def test_guesses_use_only_the_top_colours_in_proportion_to_their_counts():
    # Four colours covering 40, 30, 20 and 10 columns, plus single stray pixels of two others.
    reference = striped([(250, 250, 250), (200, 40, 40), (40, 80, 200), (60, 160, 60)], [40, 30, 20, 10])
    reference[:, 0, 0] = torch.tensor([130, 0, 250], dtype=torch.uint8)
    reference[:, 1, 0] = torch.tensor([0, 250, 250], dtype=torch.uint8)
    histogram = histogram_of(reference)
    assert histogram.dtype == torch.int64 and histogram.shape == (BINS,) and int(histogram.sum()) == reference[0].numel()
    bins, probabilities = guess_colours(histogram, top_k=4)
    # 32 rows: the stray pixels took two of the white stripe's.
    assert [tuple(bin_color(b)) for b in bins] == [(240, 240, 240), (208, 48, 48), (48, 80, 208), (48, 176, 48)]
    assert probabilities == pytest.approx(np.array([1278, 960, 640, 320]) / 3198)
    top = {tuple(bin_color(b)) for b in bins}
    rngs = [np.random.default_rng(seed) for seed in range(300)]
    _, params = guess_hints(histogram, rngs, 64, 64, top_k=4)
    colours = drawn_colours(params)
    assert set(colours) == top  # every top colour is guessed, nothing else (not the stray pixels)
    shares = np.array([colours.count(tuple(bin_color(b))) for b in bins]) / len(colours)
    assert shares == pytest.approx(probabilities, abs=0.04)
    # The default top 100 still never guesses a colour the reference lacks.
    _, params = guess_hints(histogram, rngs[:100], 64, 64)
    assert set(drawn_colours(params)) <= {tuple(bin_color(b)) for b in np.flatnonzero(histogram.numpy())}


def test_patches_follow_the_histogram_schemes_geometry_and_paint_as_drawn():
    histogram = color_histogram(striped([(10, 200, 10)], [8]))[0].numpy()
    params = [draw_guessed_hints(np.random.default_rng(seed), 96, 80, histogram) for seed in range(200)]
    counts = [len(p["patches"]) for p in params]
    assert min(counts) >= MIN_PATCHES and max(counts) <= MAX_PATCHES
    for sample in params:
        for patch in sample["patches"]:
            y0, x0, y1, x1 = patch["box"]
            assert 0 <= y0 < y1 <= 96 and 0 <= x0 < x1 <= 80 and MIN_SIDE <= y1 - y0 <= MAX_SIDE and y1 - y0 == x1 - x0
    hints = paint_guessed_hints(params[:3], 96, 80)
    assert hints.shape == (3, 4, 96, 80) and hints.dtype == torch.uint8
    for index, sample in enumerate(params[:3]):
        y0, x0, y1, x1 = sample["patches"][-1]["box"]
        assert (hints[index, :3, y0:y1, x0:x1] == torch.tensor(bin_color(sample["patches"][-1]["bin"]), dtype=torch.uint8)[:, None, None]).all()
        assert (hints[index, 3, y0:y1, x0:x1] == 255).all()
    mask = hints[:, 3] > 0
    assert (hints[:, :3].permute(0, 2, 3, 1)[mask] == torch.tensor(bin_color(int(np.flatnonzero(histogram)[0])), dtype=torch.uint8)).all()
    # Same generators, same hints; the histogram may be counts or probabilities, torch or NumPy.
    again, _ = guess_hints(torch.from_numpy(histogram / histogram.sum()), [np.random.default_rng(s) for s in range(3)], 96, 80)
    assert torch.equal(again, hints)


def test_bad_histograms_are_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="512 bins"):
        draw_guessed_hints(rng, 8, 8, np.ones(256))
    with pytest.raises(ValueError, match="empty histogram"):
        draw_guessed_hints(rng, 8, 8, np.zeros(BINS))
    with pytest.raises(ValueError, match="non-negative"):
        draw_guessed_hints(rng, 8, 8, -np.ones(BINS))
    with pytest.raises(ValueError, match="top_k"):
        guess_colours(np.ones(BINS), top_k=0)
    with pytest.raises(ValueError, match="uint8"):
        histogram_of(torch.zeros((3, 4, 4)))


@pytest.mark.skipif(not REAL_COLOR.is_dir(), reason="../shared/data/real is not here (shared test data, outside the project)")
def test_guesses_from_real_illustrations_take_their_top_colours():
    for path in sorted(REAL_COLOR.glob("style2paints_v1_test_1*.jpg"))[:3]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        histogram = histogram_of(torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))))
        bins, _ = guess_colours(histogram, top_k=16)
        _, params = guess_hints(histogram, [np.random.default_rng(seed) for seed in range(50)], 512, 512, top_k=16)
        assert set(drawn_colours(params)) <= {tuple(bin_color(b)) for b in bins}, path.name
