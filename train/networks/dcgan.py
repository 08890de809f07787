"""A DCGAN-style conditional discriminator: stride-2 4x4 convolutions (BatchNorm after the first,
LeakyReLU 0.2) down to a small map, then one real/fake logit per image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train.networks.layers import check_input, strided_conv_layers


@dataclass(frozen=True)
class DCGANConfig:
    in_channels: int = 8
    channels: tuple[int, ...] = (64, 128, 256, 512)


class DCGANDiscriminator(nn.Module):
    def __init__(self, config: DCGANConfig = DCGANConfig()) -> None:
        super().__init__()
        self.config = config
        layers, width = strided_conv_layers(config.in_channels, config.channels, lambda: nn.LeakyReLU(0.2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config.in_channels)
        return self.model(x)
