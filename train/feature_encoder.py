"""xu2020's draft encoder: torchvision's ImageNet GoogLeNet inside the refinement generator, as its
initial weights (fine-tuned with the generator, as the thesis does) or frozen."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from extractors.weights import WeightsMissing
from train.errors import TrainingError
from train.networks.googlenet import FEATURE_CHANNELS, GoogLeNet, load_googlenet
from train.networks.unet import DraftEncodedUNet


def attach_feature_encoder(generator: nn.Module, path: Path | None, fine_tune: bool = False) -> None:
    """Give a draft-encoding generator the ImageNet GoogLeNet (from `path`; None: an untrained one,
    whose weights a checkpoint then provides), trained on with the generator when `fine_tune`."""
    if not isinstance(generator, DraftEncodedUNet):
        raise TrainingError("--feature-encoder: this recipe's generator does not encode a draft (xu2020 refine does)")
    try:
        network = load_googlenet(path) if path is not None else GoogLeNet()
    except (WeightsMissing, ValueError) as exc:
        raise TrainingError(str(exc)) from None
    generator.use_pretrained_encoder(network, FEATURE_CHANNELS, fine_tune)
