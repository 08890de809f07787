"""Reason codes `pipe prepare` writes to its ledger, and the exception that carries one.

The codes are stable: scripts and `pipe status` group by them. The human-readable `detail` next to
each says the measured value and the threshold it failed.
"""

from __future__ import annotations

READ_ERROR = "read_error"  # the file could not be read at all (permissions, vanished, I/O error)
DECODE_ERROR = "decode_error"  # not an image, an unknown format, or truncated/corrupt data
TOO_LARGE = "too_large"  # more pixels than --max-pixels: refused before decoding (decompression bombs)
TOO_SMALL = "too_small"  # short side under --min-side
ASPECT_RATIO = "aspect_ratio"  # long side / short side above --max-aspect
GRAYSCALE = "grayscale"  # too few coloured pixels: line art, monochrome pages, near-grey images
TOO_BRIGHT = "too_bright"  # mean brightness above --max-brightness (high-key, mostly blank)
TOO_DARK = "too_dark"  # mean brightness below --min-brightness (low-key)
NO_FACE = "no_face"  # --crop face and the cascade found no face
DUPLICATE = "duplicate"  # byte-identical to an input that was kept (same key)
NEAR_DUPLICATE = "near_duplicate"  # perceptual hash within --near-duplicate-distance of a kept image


class Rejected(Exception):
    """Raised inside the per-sample function: this input is rejected for `reason`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
