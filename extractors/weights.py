"""Where the neural extractors' weights live, and the one line to print when they are missing.

pipe never downloads weights. Converted and trained files live in one folder, $PIPE_WEIGHTS or
~/.cache/pipe/weights, unless a path is given explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEIGHTS_ENV = "PIPE_WEIGHTS"


@dataclass(frozen=True)
class WeightsSource:
    file_name: str
    how_to_get: str


SOURCES = {
    "sketchkeras": WeightsSource(
        "sketchkeras.pt",
        "download mod.h5 from the sketchKeras releases page (github.com/lllyasviel/sketchKeras/releases) "
        "and run `pipe weights convert sketchkeras mod.h5`",
    ),
    "ldm": WeightsSource(
        "ldm.pt",
        "train the Line Detection Model with `pipe train ldm` (it writes this file), or pass --weights ldm=PATH",
    ),
    # Not an extractor: the content (perceptual) loss of the trainers. Listed here so `pipe weights
    # list` shows every file pipe may look for.
    "vgg16": WeightsSource(
        "vgg16-397923af.pth",
        "get torchvision's ImageNet VGG16 weights (VGG16_Weights.IMAGENET1K_V1, file vgg16-397923af.pth) "
        "on a machine with torchvision and copy the file here",
    ),
    # The optional ImageNet colour-feature encoder of xu2020's refinement stage.
    "googlenet": WeightsSource(
        "googlenet-1378be20.pth",
        "get torchvision's ImageNet GoogLeNet weights (GoogLeNet_Weights.IMAGENET1K_V1, file googlenet-1378be20.pth) "
        "on a machine with torchvision and copy the file here",
    ),
    # The FID-family metrics of `pipe eval`: TensorFlow's 2015-12-05 Inception, ported by pytorch-fid.
    "inception": WeightsSource(
        "pt_inception-2015-12-05-6726825d.pth",
        "download pt_inception-2015-12-05-6726825d.pth from the pytorch-fid releases page "
        "(github.com/mseitzer/pytorch-fid/releases, tag fid_weights) and copy it here",
    ),
}


class WeightsMissing(FileNotFoundError):
    """A method's weights file does not exist; the message names the file and where it comes from."""


def weights_dir() -> Path:
    return Path(os.environ.get(WEIGHTS_ENV) or Path.home() / ".cache" / "pipe" / "weights")


def default_weights_path(method: str) -> Path:
    return weights_dir() / SOURCES[method].file_name


def require_weights(method: str, path: Path | None = None) -> Path:
    """The weights file for `method` (the given path or the default one); raises WeightsMissing if absent."""
    chosen = path if path is not None else default_weights_path(method)
    if not chosen.is_file():
        raise WeightsMissing(f"{method} needs its weights file {chosen}: {SOURCES[method].how_to_get}")
    return chosen


def load_tensor_file(path: Path, what: str) -> Any:
    """torch.load of a user-given weights file, tensors only (weights_only); a file torch cannot read
    that way raises ValueError("PATH is not WHAT") instead of PyTorch's pages of advice."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - whatever the bytes are, they are not the file asked for
        raise ValueError(f"{path} is not {what}") from None
