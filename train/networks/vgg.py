"""VGG16's convolutional features, for content (perceptual) losses, loaded from torchvision's file.

torchvision is not usable on every machine pipe runs on, so the network is defined here with the
same module layout as `torchvision.models.vgg16().features` (so its published state dict, keys
`features.N.weight` / `features.N.bias`, loads unchanged) and the classifier is never built.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from extractors.weights import load_tensor_file, require_weights

# What the file must be (the one line a wrong file gets).
WHAT = "torchvision's VGG16 state dict (vgg16-397923af.pth, see `pipe weights list`)"

# Convolution widths per block; "M" is a 2x2 max-pool (torchvision's configuration "D").
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# Index in `features` of the ReLU after each named convolution.
RELU_INDEX = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22, "relu5_3": 29}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg16_features() -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(channels, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = item
    return nn.Sequential(*layers)


class VGG16Features(nn.Module):
    """RGB in [0, 1] -> the activations at `layers` (ImageNet normalization applied inside); frozen."""

    def __init__(self, layers: tuple[str, ...] = ("relu2_2", "relu3_3", "relu4_3")) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in RELU_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG16 layer {', '.join(unknown)}; choose from {', '.join(RELU_INDEX)}")
        self.layers = layers
        last = max(RELU_INDEX[name] for name in layers)
        self.features = vgg16_features()[: last + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def load_torchvision(self, path: Path | None = None) -> VGG16Features:
        """Load torchvision's vgg16 state dict (the `features.*` part) from `path` or the weights folder."""
        file = require_weights("vgg16", path)
        state = load_tensor_file(file, WHAT)
        wanted = {key: value for key, value in state.items() if key.startswith("features.")} if isinstance(state, dict) else {}
        own = self.state_dict()
        missing = [key for key in own if key not in wanted]
        if missing:
            raise ValueError(f"{file} is not {WHAT}: it lacks {', '.join(missing[:3])}")
        self.load_state_dict({key: wanted[key] for key in own})
        return self

    def train(self, mode: bool = True) -> VGG16Features:
        return super().train(False)  # always a fixed feature extractor

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images - self.mean) / self.std
        wanted = {RELU_INDEX[name]: name for name in self.layers}
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                outputs.append(x)
        return outputs


CONTENT_DISTANCES = ("l1", "mse")


def content_loss(features: VGG16Features, output: torch.Tensor, target: torch.Tensor, distance: str = "l1") -> torch.Tensor:
    """Mean distance ("l1", or "mse": Lee & Lee's eq. 5) between the VGG16 activations of output and
    target (RGB in [0, 1]), averaged over the feature network's layers."""
    if distance not in CONTENT_DISTANCES:
        raise ValueError(f"unknown content distance {distance!r}; choose from {', '.join(CONTENT_DISTANCES)}")
    measure = torch.nn.functional.l1_loss if distance == "l1" else torch.nn.functional.mse_loss
    losses = [measure(a, b) for a, b in zip(features(output), features(target))]
    return torch.stack(losses).mean()
