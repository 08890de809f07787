"""Line augmentations: which line art a sample gets, histogram equalization, and intensity jitter.

Per sample (as Lee & Lee do): the line source is drawn from the extracted methods by weight, or is
the grey image for a share of samples; it is histogram-equalized with probability `equalize_share`;
then the intensity jitter x * r + 1 - r (x in [0, 1]) lightens the strokes, r uniform in
[min_jitter, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from extractors.ops import check_batch
from extractors.postprocess import equalize_histogram

GRAY_SOURCE = "gray"


@dataclass(frozen=True)
class LineAugment:
    weights: tuple[tuple[str, float], ...]  # (method, weight) of the extracted methods to draw from
    gray_share: float = 0.0
    equalize_share: float = 0.0
    min_jitter: float = 0.7

    def __post_init__(self) -> None:
        if not self.weights or any(w <= 0 for _, w in self.weights):
            raise ValueError("line weights must name at least one method, each with a weight > 0")
        for name, value in (("gray share", self.gray_share), ("equalize share", self.equalize_share)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if not 0 < self.min_jitter <= 1:
            raise ValueError(f"the jitter's lower bound r must be in (0, 1], got {self.min_jitter}")


def parse_line_weights(text: str) -> tuple[tuple[str, float], ...]:
    """`xdog,dilate` or `xdog=2,dilate=1` -> ((name, weight), ...); equal weights when none given."""
    pairs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, weight = part.partition("=")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad weight in {part!r}: expected METHOD=NUMBER") from None
        if value <= 0:
            raise ValueError(f"weight of {name} must be > 0, got {value}")
        pairs.append((name.strip(), value))
    if not pairs:
        raise ValueError("no line methods given")
    return tuple(pairs)


def draw_line_augment(rng: np.random.Generator, augment: LineAugment, available: set[str]) -> dict:
    """Pick the line source among the methods extracted for this sample (or grey), and the augmentations."""
    choices = [(name, weight) for name, weight in augment.weights if name in available]
    if augment.gray_share > 0 and (rng.random() < augment.gray_share or not choices):
        source = GRAY_SOURCE
    elif not choices:
        raise ValueError(f"none of the line methods {', '.join(n for n, _ in augment.weights)} was extracted for this image")
    else:
        weights = np.array([w for _, w in choices])
        source = choices[int(rng.choice(len(choices), p=weights / weights.sum()))][0]
    return {
        "source": source,
        "equalize": bool(augment.equalize_share > 0 and rng.random() < augment.equalize_share),
        "jitter": float(rng.uniform(augment.min_jitter, 1.0)) if augment.min_jitter < 1 else 1.0,
    }


def apply_line_augment(lines: torch.Tensor, params: list[dict]) -> torch.Tensor:
    """uint8 (B, 1, H, W) lines (already from each sample's source) -> augmented uint8 lines."""
    check_batch(lines, channels=1, name="lines")
    if len(params) != lines.shape[0]:
        raise ValueError(f"need one parameter dict per line image: {lines.shape[0]} images, {len(params)} dicts")
    out = lines.clone()
    equalize = [i for i, p in enumerate(params) if p["equalize"]]
    if equalize:
        out[equalize] = equalize_histogram(out[equalize])
    r = torch.as_tensor([p["jitter"] for p in params], dtype=torch.float32, device=lines.device).view(-1, 1, 1, 1)
    # x * r + 1 - r on [0, 1] is x * r + 255 (1 - r) on 0..255.
    jittered = out.to(torch.float32) * r + 255.0 * (1 - r)
    return jittered.round().clamp(0, 255).to(torch.uint8)
