"""`points` hints (Lee & Lee 2020): N single pixels copied from the colour image, N uniform in 0..128."""

from __future__ import annotations

import numpy as np

from synth.common import DrawInput, SynthContext, apply_pixel_hints

MAX_POINTS = 128


def draw_point_hints(rng: np.random.Generator, sample: DrawInput, context: SynthContext, max_points: int = MAX_POINTS) -> dict:
    count = int(rng.integers(0, max_points + 1))
    ys = rng.integers(0, sample.height, size=count)
    xs = rng.integers(0, sample.width, size=count)
    return {"yx": [[int(y), int(x)] for y, x in zip(ys, xs)]}


# Drawn pixels are painted as every "yx" scheme paints them.
apply_point_hints = apply_pixel_hints
