"""Draft artifacts for training the refinement stage: `paste`, `warp`, `spray`, applied in that order.

All enabled artifacts together turn the colour image into the synthesized erroneous draft (the DUT
thesis section 4.3.3, after Zhang et al. 2018). Parameters are one dict per sample keyed by artifact.
"""

from __future__ import annotations

import numpy as np
import torch

from synth.artifacts.paste import apply_paste_artifacts, draw_paste_artifacts
from synth.artifacts.spray import apply_spray_artifacts, draw_spray_artifacts
from synth.artifacts.warp import apply_warp_artifacts, draw_warp_artifacts
from synth.common import DrawInput, SynthContext, check_images, parse_subset

ARTIFACTS = {
    "paste": ("rectangles of side 16-128 from other images, distorted and pasted (wrong colours)", draw_paste_artifacts),
    "warp": ("smooth random displacement plus blur (colours off their boundaries)", draw_warp_artifacts),
    "spray": ("an image colour sprayed along 1-3 strokes of radius 16-64 (colour bleeding)", draw_spray_artifacts),
}
ARTIFACT_ORDER = tuple(ARTIFACTS)


def parse_artifact_names(text: str) -> tuple[str, ...]:
    """`paste,warp,spray` -> names in application order; `none` or empty -> ()."""
    names, unknown = parse_subset(text, ARTIFACT_ORDER)
    if unknown:
        raise ValueError(f"unknown artifact {', '.join(unknown)}; choose from {', '.join(ARTIFACTS)} (or none)")
    return names


def draw_artifacts(rng: np.random.Generator, sample: DrawInput, context: SynthContext, names: tuple[str, ...]) -> dict:
    return {name: ARTIFACTS[name][1](rng, sample, context) for name in ARTIFACT_ORDER if name in names}


def donor_keys_of(params: list[dict]) -> set[str]:
    return {paste["donor"] for sample in params for paste in sample.get("paste", {}).get("pastes", [])}


def apply_artifacts(images: torch.Tensor, params: list[dict], donors: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The erroneous drafts: every artifact present in a sample's parameters, in ARTIFACT_ORDER."""
    check_images(images, params)
    drafts = images
    for name in ARTIFACT_ORDER:
        indices = [i for i, p in enumerate(params) if name in p]
        if not indices:
            continue
        chosen = [params[i][name] for i in indices]
        subset = drafts[indices]
        if name == "paste":
            result = apply_paste_artifacts(subset, chosen, donors or {})
        elif name == "warp":
            result = apply_warp_artifacts(subset, chosen)
        else:
            result = apply_spray_artifacts(subset, chosen)
        drafts = drafts.clone() if drafts is images else drafts
        drafts[indices] = result
    return drafts
