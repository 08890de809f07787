"""Lee & Lee's draft generator: a U-Net of ResNeXt blocks, pixel-shuffle upsampling, no normalization.

Encoder levels: two ResNeXt blocks (1x1 reduce, grouped 3x3 with cardinality 32, 1x1 expand, residual
add; LeakyReLU 0.2), then a 4x4 stride-2 convolution. Decoder levels: a 3x3 convolution to four times
the channels and PixelShuffle(2) (sub-pixel upsampling, no checkerboard from transposed kernels),
the skip concatenated, a 3x3 convolution and a ResNeXt block. A tanh head gives RGB in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from train.networks.layers import check_input, encode_levels


@dataclass(frozen=True)
class ResNeXtUNetConfig:
    in_channels: int = 5
    out_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512)
    cardinality: int = 32
    blocks: int = 2

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.channels) - 1)


class ResNeXtBlock(nn.Module):
    def __init__(self, channels: int, cardinality: int) -> None:
        super().__init__()
        inner = max(1, channels // 2)
        groups = math.gcd(inner, cardinality)
        self.body = nn.Sequential(
            nn.Conv2d(channels, inner, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(inner, inner, 3, padding=1, groups=groups), nn.LeakyReLU(0.2),
            nn.Conv2d(inner, channels, 1),
        )
        self.activation = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x + self.body(x))


class ResNeXtUNet(nn.Module):
    def __init__(self, config: ResNeXtUNetConfig = ResNeXtUNetConfig()) -> None:
        super().__init__()
        self.config = config
        chans, card = config.channels, config.cardinality

        def blocks(c: int) -> nn.Sequential:
            return nn.Sequential(*(ResNeXtBlock(c, card) for _ in range(config.blocks)))

        self.stem = nn.Sequential(nn.Conv2d(config.in_channels, chans[0], 3, padding=1), nn.LeakyReLU(0.2))
        self.encode = nn.ModuleList(blocks(c) for c in chans[:-1])
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(chans[i], chans[i + 1], 4, 2, 1), nn.LeakyReLU(0.2)) for i in range(len(chans) - 1))
        self.bottleneck = blocks(chans[-1])
        levels = list(reversed(range(len(chans) - 1)))
        self.up = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[i + 1], 4 * chans[i], 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2)) for i in levels
        )
        self.merge = nn.ModuleList(
            nn.Sequential(nn.Conv2d(2 * chans[i], chans[i], 3, padding=1), nn.LeakyReLU(0.2), ResNeXtBlock(chans[i], card)) for i in levels
        )
        self.head = nn.Sequential(nn.Conv2d(chans[0], config.out_channels, 3, padding=1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config.in_channels, self.config.size_multiple)
        x, skips = encode_levels(self.stem(x), self.encode, self.down)
        x = self.bottleneck(x)
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
