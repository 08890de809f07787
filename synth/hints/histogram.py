"""`histogram` hints (Fu et al., CS229): whitened patches filled with colours guessed from a histogram.

Colours are quantized to 8 levels per channel (512 bins). Each patch's colour is a bin drawn from
the image's own histogram or, with probability `dataset_share`, from the dataset-wide histogram
(`pipe shard` computes it once and stores it in shards/_histogram.npy); the bin centre is painted.
"""

from __future__ import annotations

import numpy as np
import torch

from synth.common import DrawInput, SynthContext, bin_color, check_images, color_histogram, empty_hints, paint_box, uniform_box

MIN_PATCHES, MAX_PATCHES = 1, 10
MIN_SIDE, MAX_SIDE = 16, 48
DATASET_SHARE = 0.5


def normalized(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    if total <= 0:
        raise ValueError("cannot draw colours from an empty histogram")
    return counts.astype(np.float64) / total


def draw_histogram_hints(
    rng: np.random.Generator,
    sample: DrawInput,
    context: SynthContext,
    min_patches: int = MIN_PATCHES,
    max_patches: int = MAX_PATCHES,
    dataset_share: float = DATASET_SHARE,
) -> dict:
    own = normalized(color_histogram(sample.image[None])[0].cpu().numpy())
    dataset = context.dataset_histogram
    patches = []
    for _ in range(int(rng.integers(min_patches, max_patches + 1))):
        side = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
        box = uniform_box(rng, sample.height, sample.width, side)
        source = "dataset" if dataset is not None and rng.random() < dataset_share else "image"
        probabilities = normalized(dataset) if source == "dataset" else own
        bin_index = int(rng.choice(probabilities.size, p=probabilities))
        patches.append({"box": box, "source": source, "bin": bin_index, "color": bin_color(bin_index)})
    return {"patches": patches}


def apply_histogram_hints(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    check_images(images, params)
    hints = empty_hints(images)
    for index, sample in enumerate(params):
        for patch in sample["patches"]:
            paint_box(hints, index, patch["box"], patch["color"])
    return hints
