"""Fu et al.'s CNN baseline: convolutions and ReLUs down, two residual layers, deconvolutions up.

The CS229 report describes a convolution/ReLU encoder-decoder in the manner of Frans's colour
network with "two residual connection layers between the convolution and deconvolution layers",
trained with L2 alone. Here: a 3x3 stem, stride-2 4x4 convolutions down, two residual blocks (3x3
conv, ReLU, 3x3 conv, added to the input) at the bottleneck, stride-2 4x4 transposed convolutions up
and a 3x3 convolution with tanh to RGB in [-1, 1]. No skip connections and no normalization (the
report names neither). The layer widths are pipe's choice (the report's figure is not in its text).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train.networks.layers import check_input, he_init


@dataclass(frozen=True)
class ResidualCNNConfig:
    in_channels: int = 4
    out_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256)
    residual_blocks: int = 2

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.channels) - 1)


class ResidualLayer(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ResidualCNN(nn.Module):
    # No normalization layers: He initialization keeps the signal alive through the stack.
    weight_init = staticmethod(he_init)

    def __init__(self, config: ResidualCNNConfig = ResidualCNNConfig()) -> None:
        super().__init__()
        self.config = config
        chans = config.channels
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, chans[0], 3, padding=1), nn.ReLU()]
        for previous, width in zip(chans, chans[1:]):
            layers += [nn.Conv2d(previous, width, 4, stride=2, padding=1), nn.ReLU()]
        layers += [ResidualLayer(chans[-1]) for _ in range(config.residual_blocks)]
        for previous, width in zip(reversed(chans), list(reversed(chans))[1:]):
            layers += [nn.ConvTranspose2d(previous, width, 4, stride=2, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(chans[0], config.out_channels, 3, padding=1), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config.in_channels, self.config.size_multiple)
        return self.model(x)
