"""The hint settings `pipe eval` colours a split under, each the same for every model scored.

none: no hints (plain FID).
cfid: Lee & Lee's C-FID layout, 28 pixels per image placed by the key alone.
shard: the hints stored in the shards.
points, patches, blur: that synthesis scheme, drawn from a generator seeded by (seed, scheme, key).
histogram-guess: Fu et al.'s guessed hints, 1-10 patches coloured from the top 100 colours of the dataset's colour histogram (shards/_histogram.npy) or of --reference IMG, never from the truth; seeded like points.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from manifests.layout import DatasetLayout
from manifests.seeding import sample_rng
from synth.common import DrawInput, SynthContext
from synth.guess import guess_colours, guess_hints, histogram_of
from synth.hints import HINTS, apply_hints, parse_names

if TYPE_CHECKING:
    from train.inference import LoadedGenerator

HISTOGRAM_GUESS = "histogram-guess"
SETTINGS = ("none", "cfid", "shard", "points", "patches", "blur", HISTOGRAM_GUESS)
# Settings whose hints are drawn from the seed (and so re-drawn by --repeats); the others are fixed.
SEEDED = ("points", "patches", "blur", HISTOGRAM_GUESS)


def parse_settings(text: str) -> tuple[str, ...]:
    return parse_names(text, SETTINGS, "hint setting")


def setting_label(setting: str) -> str:
    """What the Frechet distance under this setting is called in the report."""
    return {"none": "FID", "cfid": "C-FID"}.get(setting, f"FID ({setting} hints)")


def hint_rng(seed: int, setting: str, key: str, repeat: int = 0) -> np.random.Generator:
    """The generator of one sample's hints under a seeded setting. Repeat 0 draws what eval always
    drew (so --repeats 1 is the single run); repeat r > 0 adds its index to the labels."""
    labels = ("eval", setting, key) + ((f"repeat-{repeat}",) if repeat else ())
    return sample_rng(seed, *labels)


def eval_hints(setting: str, colors: torch.Tensor, keys: list[str], stored: torch.Tensor | None, seed: int = 0,
               repeat: int = 0, guess_histogram: np.ndarray | None = None) -> torch.Tensor:
    """RGBA uint8 hints (B, 4, H, W) for uint8 colour images (B, 3, H, W) under `setting`, on the
    images' device. `repeat` re-draws the seeded settings; `guess_histogram` (512 counts) is what
    histogram-guess colours from."""
    if setting == "none":
        return torch.zeros((colors.shape[0], 4, *colors.shape[-2:]), dtype=torch.uint8, device=colors.device)
    if setting == "shard":
        if stored is None:
            raise ValueError("the shards have no hint member: shard with --hints, or evaluate under another setting")
        return stored
    if setting == HISTOGRAM_GUESS:
        if guess_histogram is None:
            raise ValueError(f"the {HISTOGRAM_GUESS} setting needs a colour histogram to guess from")
        hints, _ = guess_hints(guess_histogram, [hint_rng(seed, setting, key, repeat) for key in keys], *colors.shape[-2:], colors.device)
        return hints
    if setting not in SETTINGS:
        raise ValueError(f"unknown hint setting {setting!r}")
    scheme = HINTS[setting]
    params = [{"scheme": setting, **scheme.draw(hint_rng(seed, setting, key, repeat), DrawInput(key, image), SynthContext())} for key, image in zip(keys, colors)]
    return apply_hints(colors, params)


def guess_histogram(root: Path, reference: Path | None) -> tuple[np.ndarray, str]:
    """(512 counts, where they came from) for histogram-guess: the reference image's colours, or the
    dataset histogram `pipe shard` wrote. A ValueError / FileNotFoundError says what is missing."""
    if reference is not None:
        reference = Path(reference)
        if not reference.is_file():
            raise FileNotFoundError(f"--reference {reference}: no such file")
        bgr = cv2.imread(str(reference), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"--reference {reference}: not an image OpenCV can decode")
        rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))
        return histogram_of(torch.from_numpy(rgb)).numpy(), f"reference image {reference.name}"
    path = DatasetLayout(root).shard_histogram
    if not path.is_file():
        raise FileNotFoundError(f"--hints {HISTOGRAM_GUESS} guesses from the dataset colour histogram {path}, which is missing: "
                                f"shard with `--hints histogram` (it counts the train images), or give --reference IMAGE")
    try:
        counts = np.load(path, allow_pickle=False)
        guess_colours(counts)  # the shape and counts are checked here, once
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a colour histogram ({exc}): delete it and re-run `pipe shard --hints histogram`, or give --reference IMAGE") from None
    return counts, f"dataset histogram {DatasetLayout(root).relative(path)}"


def hintless_note(models: Sequence[LoadedGenerator]) -> str | None:
    """None when one of the models reads hints; else what each takes instead, for a warning
    (`xu2020 draft takes no hints (its inputs: line)`)."""
    if any(model.recipe.takes_hints for model in models):
        return None
    return "; ".join(f"{model.name} takes no hints (its inputs: {', '.join(model.recipe.inputs)})" for model in models)
