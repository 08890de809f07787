"""xu2020's draft encoder: torchvision's ImageNet GoogLeNet, frozen, inside the refinement generator."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from extractors.weights import WeightsMissing
from train.errors import TrainingError
from train.networks.googlenet import FEATURE_CHANNELS, GoogLeNet, load_googlenet
from train.networks.unet import DraftEncodedUNet


def attach_feature_encoder(generator: nn.Module, path: Path | None) -> None:
    """Give a draft-encoding generator the frozen ImageNet GoogLeNet (from `path`; None: an untrained one,
    whose weights a checkpoint then provides)."""
    if not isinstance(generator, DraftEncodedUNet):
        raise TrainingError("--feature-encoder: this recipe's generator does not encode a draft (xu2020 refine does)")
    try:
        network = load_googlenet(path) if path is not None else GoogLeNet()
    except (WeightsMissing, ValueError) as exc:
        raise TrainingError(str(exc)) from None
    generator.use_pretrained_encoder(network, FEATURE_CHANNELS)
