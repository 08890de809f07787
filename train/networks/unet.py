"""The U-Net generator family (pix2pix's unet_256 and the recipes' variants), built from a channel list.

Encoder level i halves the resolution with a 4x4 stride-2 convolution; the decoder mirrors it, and
each decoder level sees the matching encoder features concatenated to its input (skip connections).
With the defaults (channels 64-128-256-512-512-512-512-512, batch norm, transposed convolutions,
dropout in the three up blocks above the innermost) it has the layer structure of pix2pix's `unet_256`.
`RonnebergerUNet` is the original U-Net (max-pooling, 2x2 up-convolutions), cheng2018's generator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch
from torch import nn

from train.networks.layers import check_input, conv_bias, he_init, norm_layer, upsample_conv


@dataclass(frozen=True)
class UNetConfig:
    in_channels: int = 3
    out_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)
    norm: str = "batch"
    upsample: str = "transposed"
    # Up blocks that end with dropout(0.5), counted outwards from the up block `dropout_start` steps
    # from the innermost: pix2pix's code puts them just above the innermost one (start 1); the DUT
    # thesis's CD512-CD1024-CD1024 are the innermost three (start 0).
    dropout_blocks: int = 3
    dropout: float = 0.5
    dropout_start: int = 1
    # Keep the dropout on in eval mode too: the noise input of G(x, z), at inference as in training.
    dropout_at_inference: bool = False
    # Channels of extra features joined to the innermost level (see DraftEncodedUNet); 0: none.
    bottleneck_features: int = 0

    @property
    def depth(self) -> int:
        return len(self.channels)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2**self.depth


class NoiseDropout(nn.Dropout):
    """Dropout that stays on in eval mode: the generator's noise source at inference as in training
    (no parameters, so it replaces nn.Dropout in a checkpoint without changing its keys).

    In training mode it is ordinary dropout. In eval mode each sample's mask comes from its own
    generator seeded by `sample_seeds[i]` (which the network sets before each forward from a hash
    of the sample's input), so a colouring is reproducible and does not depend on the batch the
    sample is in or on the device; without seeds it draws from torch's global generator.
    """

    sample_seeds: list[int] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or self.sample_seeds is None:
            return nn.functional.dropout(x, self.p, training=True, inplace=self.inplace)
        if len(self.sample_seeds) != x.shape[0]:
            raise ValueError(f"{len(self.sample_seeds)} noise seeds for a batch of {x.shape[0]}")
        keep = [torch.rand(x.shape[1:], generator=torch.Generator().manual_seed(seed)) >= self.p for seed in self.sample_seeds]
        return x * torch.stack(keep).to(device=x.device, dtype=x.dtype) / (1.0 - self.p)


def input_seeds(x: torch.Tensor) -> list[int]:
    """A 63-bit seed per sample from the bytes of its (float32) input: the same sample, the same noise."""
    data = x.detach().float().cpu().contiguous().numpy()
    return [int.from_bytes(hashlib.sha256(sample.tobytes()).digest()[:8], "little") >> 1 for sample in data]


def seed_noise(module: nn.Module, x: torch.Tensor) -> None:
    """In eval mode, give every NoiseDropout of `module` per-sample seeds derived from the input `x`."""
    layers = [m for m in module.modules() if isinstance(m, NoiseDropout)]
    if not layers or module.training:
        for layer in layers:
            layer.sample_seeds = None
        return
    seeds = input_seeds(x)
    for index, layer in enumerate(layers):
        layer.sample_seeds = [(seed + 0x9E3779B97F4A7C15 * (index + 1)) % (1 << 63) for seed in seeds]


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
                if config.dropout_start <= blocks_from_inner < config.dropout_start + config.dropout_blocks:
                    layers.append(NoiseDropout(config.dropout) if config.dropout_at_inference else nn.Dropout(config.dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor, bottleneck: torch.Tensor | None = None) -> torch.Tensor:
        check_input(x, self.config.in_channels, self.config.size_multiple)
        if self.config.dropout_at_inference:
            seed_noise(self, x)
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
        self.fine_tune = False

    def use_pretrained_encoder(self, network: nn.Module, channels: int, fine_tune: bool = False) -> None:
        """Replace the trained encoder by a pretrained feature network (`features(rgb01)` -> `channels`
        maps): frozen, or (`fine_tune`) its weights trained on with the generator's. Either way its
        BatchNorm layers keep their ImageNet statistics (eval mode): small GAN batches would make them noisy."""
        self.pretrained = network.eval().requires_grad_(fine_tune)
        self.fine_tune = fine_tune
        self.encoder = nn.Conv2d(channels, self.feature_channels, kernel_size=1)

    def train(self, mode: bool = True) -> DraftEncodedUNet:
        super().train(mode)
        if self.pretrained is not None:
            self.pretrained.eval()  # fixed BatchNorm statistics
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected (B, {self.config.in_channels}, H, W) (sketch and hints, then the RGB draft), got {tuple(x.shape)}")
        draft = x[:, -3:]
        if self.pretrained is None:
            features = self.encoder(draft)
        else:
            inner = (x.shape[-2] >> self.config.depth, x.shape[-1] >> self.config.depth)
            with torch.set_grad_enabled(torch.is_grad_enabled() and self.fine_tune):
                maps = self.pretrained.features((draft + 1) / 2)
            features = self.encoder(nn.functional.adaptive_avg_pool2d(maps, inner))
        return self.unet(x[:, :-3], bottleneck=features)


@dataclass(frozen=True)
class RonnebergerConfig:
    in_channels: int = 4
    out_channels: int = 3
    channels: tuple[int, ...] = (64, 128, 256, 512, 1024)

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.channels) - 1)


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(), nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.ReLU())


class RonnebergerUNet(nn.Module):
    """Ronneberger et al.'s U-Net (2015), the generator Cheng adopted: per level two 3x3 convolutions
    with ReLU, 2x2 max-pooling down; up by a 2x2 stride-2 "up-convolution" halving the channels (its
    windows do not overlap, so no checkerboard), the skip concatenated, two 3x3 convolutions; a 1x1
    convolution to the output. Convolutions are padded (the output keeps the input's size) and a
    tanh gives [-1, 1] (pipe's image convention) where the original ends in a per-pixel softmax.
    Without normalization layers it starts from He initialization (`weight_init`), as the original does."""

    weight_init = staticmethod(he_init)

    def __init__(self, config: RonnebergerConfig = RonnebergerConfig()) -> None:
        super().__init__()
        if len(config.channels) < 2:
            raise ValueError("a U-Net needs at least two levels")
        self.config = config
        chans = config.channels
        self.encode = nn.ModuleList(_double_conv(config.in_channels if i == 0 else chans[i - 1], c) for i, c in enumerate(chans))
        self.pool = nn.MaxPool2d(2)
        levels = list(reversed(range(len(chans) - 1)))
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i + 1], chans[i], kernel_size=2, stride=2) for i in levels)
        self.decode = nn.ModuleList(_double_conv(2 * chans[i], chans[i]) for i in levels)
        self.head = nn.Sequential(nn.Conv2d(chans[0], config.out_channels, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config.in_channels, self.config.size_multiple)
        skips = []
        for index, block in enumerate(self.encode):
            x = block(x if index == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.up, self.decode):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
