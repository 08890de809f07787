"""The U-Net generator family (pix2pix's unet_256 and the recipes' variants), built from a channel list.

Encoder level i halves the resolution with a 4x4 stride-2 convolution; the decoder mirrors it, and
each decoder level sees the matching encoder features concatenated to its input (skip connections).
With the defaults (channels 64-128-256-512-512-512-512-512, batch norm, transposed convolutions,
dropout in the three innermost up blocks) it has the layer structure of pix2pix's `unet_256`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from train.networks.layers import check_input, conv_bias, norm_layer, upsample_conv


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)
    norm: str = "batch"
    upsample: str = "transposed"
    # Up blocks, counted outwards from just above the innermost one, that apply dropout(0.5): the
    # noise source of a pix2pix generator (it stays on at test time in the paper).
    dropout_blocks: int = 3
    dropout: float = 0.5
    # Channels of extra features joined to the innermost level (see DraftEncodedUNet); 0: none.
    bottleneck_features: int = 0

    @property
    def depth(self) -> int:
        return len(self.channels)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2**self.depth


class UNetGenerator(nn.Module):
    def __init__(self, config: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        if config.depth < 2:
            raise ValueError("a U-Net needs at least two levels")
        self.config = config
        bias = conv_bias(config.norm)
        chans = config.channels
        self.down = nn.ModuleList()
        for level, out_ch in enumerate(chans):
            in_ch = config.in_channels if level == 0 else chans[level - 1]
            layers: list[nn.Module] = [] if level == 0 else [nn.LeakyReLU(0.2)]
            # The outermost convolution keeps pix2pix's bias setting; the innermost has no norm (1x1 maps).
            layers.append(nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=bias))
            if 0 < level < config.depth - 1:
                layers.append(norm_layer(config.norm, out_ch))
            self.down.append(nn.Sequential(*layers))
        # Extra bottleneck features are concatenated and fused back to the innermost width by a 1x1 conv.
        inner = chans[-1]
        self.fuse = nn.Conv2d(inner + config.bottleneck_features, inner, kernel_size=1) if config.bottleneck_features else None
        self.up = nn.ModuleList()
        for level in reversed(range(config.depth)):
            innermost, outermost = level == config.depth - 1, level == 0
            in_ch = chans[level] if innermost else 2 * chans[level]
            out_ch = config.out_channels if outermost else chans[level - 1]
            layers = [nn.ReLU(), upsample_conv(config.upsample, in_ch, out_ch, bias=True if outermost else bias)]
            if outermost:
                layers.append(nn.Tanh())
            else:
                layers.append(norm_layer(config.norm, out_ch))
                blocks_from_inner = config.depth - 1 - level  # 0 for the innermost up block
                if 1 <= blocks_from_inner <= config.dropout_blocks:
                    layers.append(nn.Dropout(config.dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor, bottleneck: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, self.config.in_channels, self.config.size_multiple)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        innermost = skips.pop()
        if self.fuse is not None:
            if bottleneck is None or bottleneck.shape[-2:] != innermost.shape[-2:]:
                raise ValueError(f"this U-Net needs bottleneck features at {tuple(innermost.shape[-2:])}")
            innermost = self.fuse(torch.cat([innermost, bottleneck], dim=1))
        x = self.up[0](innermost)
        for block in self.up[1:]:
            x = block(torch.cat([x, skips.pop()], dim=1))
        return x


class DraftEncodedUNet(nn.Module):
    """xu2020's refinement generator: a U-Net over sketch + hints, told about the draft by a colour-feature
    encoder whose output joins the U-Net's innermost level.

    The input's last three channels are the draft. The encoder is a stride-2 convolution stack down to
    the U-Net's innermost resolution, trained with the generator, or (`use_pretrained_encoder`, the
    thesis's option) a frozen ImageNet GoogLeNet whose inception4e features are pooled to that
    resolution and projected by a trained 1x1 convolution.
    """

    def __init__(self, config: UNetConfig, feature_channels: int = 256) -> None:
        super().__init__()
        self.unet = UNetGenerator(replace(config, in_channels=config.in_channels - 3, bottleneck_features=feature_channels))
        layers: list[nn.Module] = []
        previous = 3
        for level in range(config.depth):
            width = min(feature_channels, 32 << level) if level < config.depth - 1 else feature_channels
            layers += [nn.Conv2d(previous, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            previous = width
        self.encoder = nn.Sequential(*layers)
        self.config = config
        self.feature_channels = feature_channels
        self.pretrained: nn.Module | None = None

    def use_pretrained_encoder(self, network: nn.Module, channels: int) -> None:
        """Replace the trained encoder by a frozen feature network (`features(rgb01)` -> `channels` maps)."""
        self.pretrained = network.eval().requires_grad_(False)
        self.encoder = nn.Conv2d(channels, self.feature_channels, kernel_size=1)

    def train(self, mode: bool = True) -> DraftEncodedUNet:
        super().train(mode)
        if self.pretrained is not None:
            self.pretrained.eval()  # frozen BatchNorm statistics
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (B, {self.config.in_channels}, H, W) (sketch and hints, then the RGB draft), got {tuple(x.shape)}")
        draft = x[:, -3:]
        if self.pretrained is None:
            features = self.encoder(draft)
        else:
            inner = (x.shape[-2] >> self.config.depth, x.shape[-1] >> self.config.depth)
            with torch.no_grad():
                maps = self.pretrained.features((draft + 1) / 2)
            features = self.encoder(nn.functional.adaptive_avg_pool2d(maps, inner))
        return self.unet(x[:, :-3], bottleneck=features)
