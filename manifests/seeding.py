"""Per-sample random generators: every random choice in pipe comes from one of these.

A generator is seeded by the global seed and labels naming the draw (stage, method, key), hashed
together, so the same seed gives the same draws on every machine, in any order, with any number of
workers, and a sample's draws do not change when other samples are added or removed.
"""

from __future__ import annotations

import hashlib

import numpy as np


def sample_rng(seed: int, *labels: str) -> np.random.Generator:
    digest = hashlib.sha256("\x1f".join([str(seed), *labels]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))
