"""Colour-hint schemes behind one switch: `HINTS[name]` draws and applies, `apply_hints` mixes schemes in a batch.

Every hint is RGBA uint8 (B, 4, H, W): colour in RGB, where-given in alpha. A parameter dict carries
its scheme's name under "scheme", so a batch whose samples used different schemes (or "none", the
hint-free share) is re-applied in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from synth.common import DrawInput, SynthContext, check_images, empty_hints
from synth.hints.blur import apply_blur_hints, draw_blur_hints
from synth.hints.cfid import apply_cfid_hints, draw_cfid_hints
from synth.hints.histogram import apply_histogram_hints, draw_histogram_hints
from synth.hints.palette import apply_palette_hints, draw_palette_hints
from synth.hints.patches import apply_patch_hints, draw_patch_hints
from synth.hints.points import apply_point_hints, draw_point_hints

NO_HINT = "none"


@dataclass(frozen=True)
class HintScheme:
    name: str
    summary: str
    draw: Callable[[np.random.Generator, DrawInput, SynthContext], dict]
    apply: Callable[[torch.Tensor, list[dict]], torch.Tensor]


HINTS: dict[str, HintScheme] = {
    scheme.name: scheme
    for scheme in (
        HintScheme("points", "N single pixels, N uniform in 0..128 (Lee & Lee 2020)", draw_point_hints, apply_point_hints),
        HintScheme("patches", "Geometric(1/10) squares of side 4..16 around the centre, mean colour (Zhang et al. 2017)", draw_patch_hints, apply_patch_hints),
        HintScheme("blur", "30 whitened 45x45 patches, then a 115x115 Gaussian blur (Cheng's 2-stage cGAN)", draw_blur_hints, apply_blur_hints),
        HintScheme("palette", "top-4 quantized colours of 4 horizontal bands, 12 channels (Chen et al.)", draw_palette_hints, apply_palette_hints),
        HintScheme("histogram", "patches of colours guessed from image/dataset 512-bin histograms (Fu et al.)", draw_histogram_hints, apply_histogram_hints),
        HintScheme("cfid", "C-FID layout: 1,1,1,1 corner, 2,2 wing, 20 body pixels, fixed per key (Lee & Lee)", draw_cfid_hints, apply_cfid_hints),
    )
}


def parse_names(text: str, allowed: Iterable[str], kind: str) -> tuple[str, ...]:
    """Comma-separated names in their order, each once; a ValueError names the unknown ones and the choices."""
    allowed = tuple(allowed)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown {kind} {', '.join(unknown) or repr(text)}; choose from {', '.join(allowed)}")
    return names


def parse_hint_names(text: str) -> tuple[str, ...]:
    return parse_names(text, HINTS, "hint scheme")


def draw_hint(rng: np.random.Generator, sample: DrawInput, context: SynthContext, schemes: tuple[str, ...], no_hint_share: float = 0.0) -> dict:
    """One sample's hint parameters: no hint with probability `no_hint_share`, else a scheme drawn uniformly."""
    if no_hint_share > 0 and rng.random() < no_hint_share:
        return {"scheme": NO_HINT}
    name = schemes[int(rng.integers(len(schemes)))] if len(schemes) > 1 else schemes[0]
    return {"scheme": name, **HINTS[name].draw(rng, sample, context)}


def apply_hints(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    """RGBA hints for a batch whose samples may use different schemes (grouped per scheme)."""
    check_images(images, params)
    hints = empty_hints(images)
    groups: dict[str, list[int]] = {}
    for index, sample in enumerate(params):
        groups.setdefault(sample["scheme"], []).append(index)
    for name, indices in groups.items():
        if name == NO_HINT:
            continue
        if name not in HINTS:
            raise ValueError(f"unknown hint scheme {name!r} in parameters")
        hints[indices] = HINTS[name].apply(images[indices], [params[i] for i in indices])
    return hints
