"""The hint settings `pipe eval` colours a split under, each the same for every model scored.

none: no hints (plain FID).
cfid: Lee & Lee's C-FID layout, 28 pixels per image placed by the key alone.
shard: the hints stored in the shards.
points, patches, blur: that synthesis scheme, drawn from a generator seeded by (seed, scheme, key).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from manifests.seeding import sample_rng
from synth.common import DrawInput, SynthContext
from synth.hints import HINTS, apply_hints, parse_names

if TYPE_CHECKING:
    from train.inference import LoadedGenerator

SETTINGS = ("none", "cfid", "shard", "points", "patches", "blur")


def parse_settings(text: str) -> tuple[str, ...]:
    return parse_names(text, SETTINGS, "hint setting")


def setting_label(setting: str) -> str:
    """What the Frechet distance under this setting is called in the report."""
    return {"none": "FID", "cfid": "C-FID"}.get(setting, f"FID ({setting} hints)")


def eval_hints(setting: str, colors: torch.Tensor, keys: list[str], stored: torch.Tensor | None, seed: int = 0) -> torch.Tensor:
    """RGBA uint8 hints (B, 4, H, W) for uint8 colour images (B, 3, H, W) under `setting`."""
    if setting == "none":
        return torch.zeros((colors.shape[0], 4, *colors.shape[-2:]), dtype=torch.uint8, device=colors.device)
    if setting == "shard":
        if stored is None:
            raise ValueError("the shards have no hint member: shard with --hints, or evaluate under another setting")
        return stored
    if setting not in SETTINGS:
        raise ValueError(f"unknown hint setting {setting!r}")
    scheme = HINTS[setting]
    params = [{"scheme": setting, **scheme.draw(sample_rng(seed, "eval", setting, key), DrawInput(key, image), SynthContext())} for key, image in zip(keys, colors)]
    return apply_hints(colors, params)


def hintless_note(models: Sequence[LoadedGenerator]) -> str | None:
    """None when one of the models reads hints; else what each takes instead, for a warning
    (`xu2020 draft takes no hints (its inputs: line)`)."""
    if any(model.recipe.takes_hints for model in models):
        return None
    return "; ".join(f"{model.name} takes no hints (its inputs: {', '.join(model.recipe.inputs)})" for model in models)
