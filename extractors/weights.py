"""Where the neural extractors' weights live, where each published file comes from, and the one line
to print when one is missing.

Nothing here downloads: `pipe weights fetch NAME` (pipeline.weights_fetch) does, on a machine with a
network, from `WeightsSource.url`, checking `WeightsSource.sha256`. Downloaded, converted and trained
files live in one folder, $PIPE_WEIGHTS or ~/.cache/pipe/weights, unless a path is given explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WEIGHTS_ENV = "PIPE_WEIGHTS"


@dataclass(frozen=True)
class WeightsSource:
    """One weights file pipe may look for.

    file_name: the file in the weights folder. how_to_get: the sentence printed when it is missing.
    used_by: which command needs it. url: the official download (None: not published, pipe trains
    it). sha256: the SHA-256 of the downloaded file as 64 hex digits, or only its first hex digits
    where no full digest is known (checked as torch.hub checks the hash in a file name), or None
    where nothing is published (sha256_note says why and what is checked instead). download_name: the
    published file's name where it is converted into file_name after download (sketchKeras: mod.h5).
    """

    file_name: str
    how_to_get: str
    used_by: str = ""
    url: str | None = None
    sha256: str | None = None
    download_name: str | None = None
    sha256_note: str = ""

    @property
    def downloadable(self) -> bool:
        return self.url is not None

    @property
    def published_name(self) -> str:
        """The name of the file the URL serves."""
        return self.download_name or self.file_name


SOURCES = {
    "sketchkeras": WeightsSource(
        "sketchkeras.pt",
        "run `pipe weights fetch sketchkeras` on a machine with a network, or download mod.h5 from the "
        "sketchKeras releases page (github.com/lllyasviel/sketchKeras/releases) and run "
        "`pipe weights convert sketchkeras mod.h5`",
        used_by="`pipe extract --method sketchkeras` (the sketchKeras line extractor)",
        url="https://github.com/lllyasviel/sketchKeras/releases/download/0.1/mod.h5",
        sha256=None,
        download_name="mod.h5",
        sha256_note=(
            "no SHA-256 of mod.h5 is published (its name carries no hash and no digest could be "
            "cross-checked), so none is pinned: the download is checked by converting it (an HDF5 Keras "
            "model whose config maps 1 channel to 1 and whose weights fit it), and its SHA-256 is "
            "printed and recorded in sketchkeras.pt"
        ),
    ),
    "ldm": WeightsSource(
        "ldm.pt",
        "train the Line Detection Model with `pipe train ldm` (it writes this file), or pass --weights ldm=PATH",
        used_by="`pipe extract --method ldm`",
    ),
    # Not an extractor: the content (perceptual) loss of the trainers. Listed here so `pipe weights
    # list` shows every file pipe may look for.
    "vgg16": WeightsSource(
        "vgg16-397923af.pth",
        "run `pipe weights fetch vgg16` on a machine with a network, or get torchvision's ImageNet VGG16 "
        "weights (VGG16_Weights.IMAGENET1K_V1, file vgg16-397923af.pth) and copy the file here",
        used_by="`pipe train` (the VGG16 content loss of the recipes that use one)",
        url="https://download.pytorch.org/models/vgg16-397923af.pth",
        # Starts with the name's 397923af; the same digest in several independent projects' pins.
        sha256="397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
    ),
    # The optional ImageNet colour-feature encoder of xu2020's refinement stage.
    "googlenet": WeightsSource(
        "googlenet-1378be20.pth",
        "run `pipe weights fetch googlenet` on a machine with a network, or get torchvision's ImageNet "
        "GoogLeNet weights (GoogLeNet_Weights.IMAGENET1K_V1, file googlenet-1378be20.pth) and copy the file here",
        used_by="`pipe train refine --feature-encoder` (xu2020's ImageNet colour-feature encoder)",
        url="https://download.pytorch.org/models/googlenet-1378be20.pth",
        sha256="1378be20a8e875cf1568b8a71654e704449655e34711a959a38b04fb34905cef",
    ),
    # The FID-family metrics of `pipe eval`: TensorFlow's 2015-12-05 Inception, ported by pytorch-fid.
    "inception": WeightsSource(
        "pt_inception-2015-12-05-6726825d.pth",
        "run `pipe weights fetch inception` on a machine with a network, or download "
        "pt_inception-2015-12-05-6726825d.pth from the pytorch-fid releases page "
        "(github.com/mseitzer/pytorch-fid/releases, tag fid_weights) and copy it here",
        used_by="`pipe eval` (FID, KID and C-FID)",
        url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
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
