"""The PatchGAN discriminator (pix2pix's `basic` D): one real/fake logit per overlapping patch.

With three stride-2 layers it scores 70x70 patches: each output logit sees a 70x70 window of the
input. Conditional use feeds the condition and the image concatenated along channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from train.networks.layers import check_input, conv_bias, norm_layer, strided_conv_layers


@dataclass(frozen=True)
class PatchGANConfig:
    in_channels: int = 6
    base_channels: int = 64
    layers: int = 3
    norm: str = "batch"


class PatchGANDiscriminator(nn.Module):
    def __init__(self, config: PatchGANConfig = PatchGANConfig()) -> None:
        super().__init__()
        self.config = config
        bias = conv_bias(config.norm)
        width = config.base_channels
        blocks: list[nn.Module] = [nn.Conv2d(config.in_channels, width, kernel_size=4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        for layer in range(1, config.layers + 1):
            previous, width = width, config.base_channels * min(2**layer, 8)
            stride = 2 if layer < config.layers else 1
            blocks += [nn.Conv2d(previous, width, kernel_size=4, stride=stride, padding=1, bias=bias), norm_layer(config.norm, width), nn.LeakyReLU(0.2)]
        blocks.append(nn.Conv2d(width, 1, kernel_size=4, stride=1, padding=1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config.in_channels)
        return self.model(x)


def receptive_field(layers: int) -> int:
    """Input window one output logit sees: 4x4 kernels, `layers` stride-2 convs then two stride-1."""
    strides = [2] * layers + [1, 1]
    field = 1
    for stride in reversed(strides):
        field = (field - 1) * stride + 4
    return field


@dataclass(frozen=True)
class StridedConfig:
    in_channels: int = 7
    channels: tuple[int, ...] = (64, 128, 256, 512)


class StridedDiscriminator(nn.Module):
    """Cheng's simple discriminator: [conv 4x4 stride 2, batch norm, ReLU] per width, then a 1-channel logit map."""

    def __init__(self, config: StridedConfig = StridedConfig()) -> None:
        super().__init__()
        self.config = config
        blocks, width = strided_conv_layers(config.in_channels, config.channels, nn.ReLU)
        blocks.append(nn.Conv2d(width, 1, kernel_size=3, padding=1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config.in_channels)
        return self.model(x)
