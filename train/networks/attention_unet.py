"""A residual U-Net with attention gates on its skip connections and two guide decoders (chen2019).

Encoder levels: a residual block, then a 4x4 stride-2 convolution (or, `downsample="maxpool"`, 2x2
max-pooling and a 3x3 convolution: Chen et al.'s pooling layers). Decoder levels: nearest upsample
+ 3x3 convolution, the skip features weighted by an additive attention gate (Oktay et al. 2018: the
decoder feature gates which skip positions pass), concatenation, a 3x3 convolution and a residual
block. Two guide decoders read the two innermost encoder levels and predict the image at their
resolution, so the encoder learns colour directly (extra L1 losses in training, as in Zhang et al.'s
guide decoders). In training mode the forward returns `GuidedOutput(image, guides)`; in eval mode
just the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from train.networks.layers import check_input, encode_levels


class GuidedOutput(NamedTuple):
    image: torch.Tensor
    guides: list[torch.Tensor]


@dataclass(frozen=True)
class AttentionUNetConfig:
    in_channels: int = 15
    out_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512, 512)
    # "strided": a 4x4 stride-2 convolution per level; "maxpool": 2x2 max-pooling then a 3x3
    # convolution (Chen et al.'s "pooling and un-pooling layers"; the up path un-pools by repetition).
    downsample: str = "strided"

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.channels) - 1)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )
        self.activation = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x + self.body(x))


class AttentionGate(nn.Module):
    """alpha = sigmoid(psi(relu(W_x x + W_g g))); returns x * alpha (x and g at the same resolution)."""

    def __init__(self, skip_channels: int, gate_channels: int) -> None:
        super().__init__()
        inner = max(1, skip_channels // 2)
        self.skip = nn.Conv2d(skip_channels, inner, 1, bias=False)
        self.gate = nn.Conv2d(gate_channels, inner, 1, bias=True)
        self.psi = nn.Sequential(nn.ReLU(), nn.Conv2d(inner, 1, 1), nn.Sigmoid())

    def forward(self, skip: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return skip * self.psi(self.skip(skip) + self.gate(gate))


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, activation: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 1, bias=False), nn.BatchNorm2d(out_ch), activation)


class AttentionUNet(nn.Module):
    def __init__(self, config: AttentionUNetConfig = AttentionUNetConfig()) -> None:
        super().__init__()
        self.config = config
        chans = config.channels
        self.stem = _conv_bn(config.in_channels, chans[0], 3, 1, nn.ReLU())
        self.encode = nn.ModuleList(ResidualBlock(c) for c in chans[:-1])
        if config.downsample not in ("strided", "maxpool"):
            raise ValueError(f"unknown downsampling {config.downsample!r}; choose strided or maxpool")
        if config.downsample == "maxpool":
            self.down = nn.ModuleList(nn.Sequential(nn.MaxPool2d(2), _conv_bn(chans[i], chans[i + 1], 3, 1, nn.LeakyReLU(0.2))) for i in range(len(chans) - 1))
        else:
            self.down = nn.ModuleList(_conv_bn(chans[i], chans[i + 1], 4, 2, nn.LeakyReLU(0.2)) for i in range(len(chans) - 1))
        self.bottleneck = ResidualBlock(chans[-1])
        self.up = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv_bn(chans[i + 1], chans[i], 3, 1, nn.ReLU()))
            for i in reversed(range(len(chans) - 1))
        )
        self.gates = nn.ModuleList(AttentionGate(chans[i], chans[i]) for i in reversed(range(len(chans) - 1)))
        self.merge = nn.ModuleList(
            nn.Sequential(_conv_bn(2 * chans[i], chans[i], 3, 1, nn.ReLU()), ResidualBlock(chans[i])) for i in reversed(range(len(chans) - 1))
        )
        self.head = nn.Sequential(nn.Conv2d(chans[0], config.out_channels, 1), nn.Tanh())
        # Guide decoders on the bottleneck and the encoder level above it.
        self.guide_decoders = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, config.out_channels, 1), nn.Tanh())
            for c in (chans[-1], chans[-2])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor | GuidedOutput:
        check_input(x, self.config.in_channels, self.config.size_multiple)
        x, skips = encode_levels(self.stem(x), self.encode, self.down)
        x = self.bottleneck(x)
        inner = [x, skips[-1]]
        for up, gate, merge in zip(self.up, self.gates, self.merge):
            x = up(x)
            skip = skips.pop()
            x = merge(torch.cat([x, gate(skip, x)], dim=1))
        image = self.head(x)
        if not self.training:
            return image
        return GuidedOutput(image, [decoder(features) for decoder, features in zip(self.guide_decoders, inner)])
