"""`cfid` hints: Lee & Lee's C-FID evaluation layout, the same 28 pixels for a key every time.

The image is split into 7 segments: 4 corner squares (H/4 x W/4) with 1 hint pixel each, 2 wings
(the H/2 x W/4 strips between the corners on the left and right) with 2 each, and the body (the
middle W/2 columns, full height) with 20. Pixels are distinct within a segment and drawn from a
generator seeded by the key alone, so evaluation hints do not depend on the run's seed.
"""

from __future__ import annotations

import numpy as np

from manifests.seeding import sample_rng
from synth.common import DrawInput, SynthContext, apply_pixel_hints

SEGMENT_NAMES = ("top_left", "top_right", "bottom_left", "bottom_right", "left_wing", "right_wing", "body")
SEGMENT_COUNTS = (1, 1, 1, 1, 2, 2, 20)


def cfid_segments(height: int, width: int) -> list[tuple[str, int, int, int, int, int]]:
    """(name, y0, y1, x0, x1, pixels) of the 7 segments; together they tile the image."""
    qy, qx = height // 4, width // 4
    y3, x3 = height - qy, width - qx
    boxes = [
        (0, qy, 0, qx),
        (0, qy, x3, width),
        (y3, height, 0, qx),
        (y3, height, x3, width),
        (qy, y3, 0, qx),
        (qy, y3, x3, width),
        (0, height, qx, x3),
    ]
    return [(name, *box, count) for name, box, count in zip(SEGMENT_NAMES, boxes, SEGMENT_COUNTS)]


def draw_cfid_hints(rng: np.random.Generator, sample: DrawInput, context: SynthContext) -> dict:
    """`rng` is ignored on purpose: the layout is a function of the key and the image size."""
    keyed = sample_rng(0, "cfid", sample.key)
    yx = []
    for _, y0, y1, x0, x1, count in cfid_segments(sample.height, sample.width):
        area_width = x1 - x0
        picks = keyed.choice((y1 - y0) * area_width, size=count, replace=False)
        yx += [[int(y0 + p // area_width), int(x0 + p % area_width)] for p in picks]
    return {"yx": yx}


# Drawn pixels are painted as every "yx" scheme paints them.
apply_cfid_hints = apply_pixel_hints
