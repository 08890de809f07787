"""Guessed colour hints (Fu et al., CS229): hints whose colours come from a colour histogram, not from the truth.

Fu et al. quantize RGB to 8 levels per channel (512 bins), count every pixel of a set of images into
the bins, project a bin back to RGB by the middle of its range in each channel, and make hints by
whiting out small patches and filling them with colours drawn according to the histogram's
distribution; the same recipe colours a line drawing with no user hints at all. Here the histogram
is either one reference image's (`histogram_of`) or the dataset's (the 512 counts `pipe shard`
writes to shards/_histogram.npy for its `histogram` hints), and the draw is restricted to the
histogram's `top_k` most frequent bins (Fu et al. show the top 100), so a colour that is rare noise
in the reference (JPEG fringes, anti-aliasing) is never guessed, nor is any colour absent from it.

The patches are placed and sized as the `histogram` hint scheme places them (synth.hints.histogram):
1..10 squares of side 16..48 pixels, uniform in the image, so a model trained on `histogram` hints
sees guessed hints of the geometry it learned; only their colours differ in origin. A draw is a
JSON-ready dict (like every scheme's), painted by `paint_guessed_hints` on the device asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from extractors.ops import check_uint8_rgb
from synth.common import HISTOGRAM_LEVELS, bin_color, color_histogram, empty_hints, paint_box, uniform_box
from synth.hints.histogram import MAX_PATCHES, MAX_SIDE, MIN_PATCHES, MIN_SIDE

# How many of the histogram's most frequent bins a guess may use (Fu et al.'s figure of top colours).
TOP_COLOURS = 100
BINS = HISTOGRAM_LEVELS**3


def histogram_of(images: torch.Tensor) -> torch.Tensor:
    """The 512 colour-bin counts (int64, on the images' device) of a uint8 RGB image (3, H, W) or of
    a batch (B, 3, H, W) counted together."""
    batch = images[None] if images.ndim == 3 else images
    check_uint8_rgb(batch)
    return color_histogram(batch).sum(dim=0)


def _as_counts(histogram: torch.Tensor | np.ndarray) -> np.ndarray:
    counts = histogram.detach().cpu().numpy() if isinstance(histogram, torch.Tensor) else np.asarray(histogram)
    counts = counts.astype(np.float64).reshape(-1)
    if counts.size != BINS:
        raise ValueError(f"a colour histogram has {BINS} bins ({HISTOGRAM_LEVELS} levels per channel), got {counts.size} values")
    if not np.isfinite(counts).all() or (counts < 0).any():
        raise ValueError("a colour histogram's counts must be finite and non-negative")
    if counts.sum() <= 0:
        raise ValueError("cannot guess colours from an empty histogram")
    return counts


def guess_colours(histogram: torch.Tensor | np.ndarray, top_k: int = TOP_COLOURS) -> tuple[np.ndarray, np.ndarray]:
    """(bins, probabilities): the histogram's `top_k` most frequent non-empty bins (ties by bin index)
    and the probability of drawing each, proportional to its count."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    counts = _as_counts(histogram)
    order = np.lexsort((np.arange(BINS), -counts))  # most frequent first, then by bin index
    bins = np.array([b for b in order[:top_k] if counts[b] > 0], dtype=np.int64)
    chosen = counts[bins]
    return bins, chosen / chosen.sum()


def draw_guessed_hints(
    rng: np.random.Generator,
    height: int,
    width: int,
    histogram: torch.Tensor | np.ndarray,
    top_k: int = TOP_COLOURS,
    min_patches: int = MIN_PATCHES,
    max_patches: int = MAX_PATCHES,
    min_side: int = MIN_SIDE,
    max_side: int = MAX_SIDE,
) -> dict:
    """One image's guessed hints: {"top_k", "patches": [{"box": [y0, x0, y1, x1], "bin", "color"}]}.
    Needs only the image's size and the histogram: the image itself is never looked at."""
    if height < 1 or width < 1:
        raise ValueError(f"cannot place hints in a {height} x {width} image")
    if not 0 <= min_patches <= max_patches or not 1 <= min_side <= max_side:
        raise ValueError(f"bad patch ranges: {min_patches}..{max_patches} patches of side {min_side}..{max_side}")
    bins, probabilities = guess_colours(histogram, top_k)
    patches = []
    for _ in range(int(rng.integers(min_patches, max_patches + 1))):
        side = int(rng.integers(min_side, max_side + 1))
        box = uniform_box(rng, height, width, side)
        bin_index = int(bins[int(rng.choice(bins.size, p=probabilities))])
        patches.append({"box": box, "bin": bin_index, "color": bin_color(bin_index)})
    return {"top_k": int(top_k), "patches": patches}


def paint_guessed_hints(params: Sequence[dict], height: int, width: int, device: torch.device | str | None = None) -> torch.Tensor:
    """RGBA uint8 hints (B, 4, H, W) on `device` from one `draw_guessed_hints` dict per image
    (later patches over earlier ones, as the histogram scheme paints)."""
    hints = empty_hints(torch.empty((len(params), 3, height, width), dtype=torch.uint8, device=device))
    for index, sample in enumerate(params):
        for patch in sample["patches"]:
            paint_box(hints, index, patch["box"], patch["color"])
    return hints


def guess_hints(histogram: torch.Tensor | np.ndarray, rngs: Sequence[np.random.Generator], height: int, width: int,
                device: torch.device | str | None = None, top_k: int = TOP_COLOURS) -> tuple[torch.Tensor, list[dict]]:
    """Guessed RGBA hints (len(rngs), 4, H, W) on `device`, one image per generator, and the drawn
    parameters (record them: re-painting them reproduces the hints)."""
    params = [draw_guessed_hints(rng, height, width, histogram, top_k) for rng in rngs]
    return paint_guessed_hints(params, height, width, device), params
