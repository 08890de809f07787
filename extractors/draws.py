"""Per-sample parameter draws of the line methods, without PyTorch (the CPU workers of `pipe extract`
import this and the OpenCV forms only, so a worker starts in a fraction of a second)."""

from __future__ import annotations

from typing import Any

import numpy as np


def draw_params(settings: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One sample's values: each tuple setting drawn uniformly, other settings as they are."""
    drawn = {}
    for name, value in settings.items():
        if isinstance(value, tuple):
            value = value[int(rng.integers(len(value)))]
        drawn[name] = value.item() if isinstance(value, np.generic) else value
    return drawn
