"""A DCGAN-style conditional discriminator: stride-2 4x4 convolutions (BatchNorm after the first,
LeakyReLU 0.2) down to a small map, then one real/fake logit per image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DCGANConfig:
    in_channels: int = 8
    channels: tuple[int, ...] = (64, 128, 256, 512)


class DCGANDiscriminator(nn.Module):
    def __init__(self, config: DCGANConfig = DCGANConfig()) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        previous = config.in_channels
        for index, width in enumerate(config.channels):
            layers.append(nn.Conv2d(previous, width, 4, 2, 1, bias=index == 0))
            if index:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2))
            previous = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(previous, 1, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        return self.model(x)
