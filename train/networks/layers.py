"""Small pieces the generators and discriminators share: normalization and upsampling by name, the
input check, the strided discriminator body, the U-Net encoder pass."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

NORMS = ("batch", "instance", "none")
UPSAMPLES = ("transposed", "nearest", "bilinear")


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization {kind!r}; choose from {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    """A convolution followed by batch norm needs no bias (the norm's shift replaces it)."""
    return norm != "batch"


def upsample_conv(kind: str, in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    """Double the resolution: a 4x4 stride-2 transposed convolution, or resize then a 3x3 convolution.

    Resize-then-convolve avoids the checkerboard artifacts of transposed convolutions (Odena et al.
    2016), which is why the DUT thesis's decoder uses it.
    """
    if kind == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=4, stride=2, padding=1, bias=bias)
    if kind in ("nearest", "bilinear"):
        upsample = nn.Upsample(scale_factor=2, mode=kind, align_corners=False if kind == "bilinear" else None)
        return nn.Sequential(upsample, nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=bias))
    raise ValueError(f"unknown upsampling {kind!r}; choose from {', '.join(UPSAMPLES)}")


def check_input(x: torch.Tensor, in_channels: int, multiple: int | None = None) -> None:
    """Raise a ValueError unless `x` is (B, in_channels, H, W), with H and W multiples of `multiple` if given."""
    if multiple is None:
        if x.ndim != 4 or x.shape[1] != in_channels:
            raise ValueError(f"expected (B, {in_channels}, H, W), got {tuple(x.shape)}")
    elif x.ndim != 4 or x.shape[1] != in_channels or x.shape[-1] % multiple or x.shape[-2] % multiple:
        raise ValueError(f"expected (B, {in_channels}, H, W) with H and W multiples of {multiple}, got {tuple(x.shape)}")


def strided_conv_layers(in_channels: int, channels: tuple[int, ...], activation: Callable[[], nn.Module]) -> tuple[list[nn.Module], int]:
    """Per width: a 4x4 stride-2 convolution, batch norm after all but the first (which keeps its bias), `activation()`.

    Returns the layers in that flat order (a Sequential of them numbers its parameters as the
    discriminators' checkpoints expect) and the channels they end with.
    """
    layers: list[nn.Module] = []
    previous = in_channels
    for index, width in enumerate(channels):
        layers.append(nn.Conv2d(previous, width, kernel_size=4, stride=2, padding=1, bias=index == 0))
        if index:
            layers.append(nn.BatchNorm2d(width))
        layers.append(activation())
        previous = width
    return layers, previous


def encode_levels(x: torch.Tensor, blocks: nn.ModuleList, downs: nn.ModuleList) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A U-Net's encoder pass: per level its block, whose output is kept as the skip, then its downsampling.

    Returns the innermost features and the skips, outermost first (decoders pop them innermost first).
    """
    skips = []
    for block, down in zip(blocks, downs):
        x = block(x)
        skips.append(x)
        x = down(x)
    return x, skips


def init_weights(module: nn.Module) -> None:
    """pix2pix's initialization: convolutions N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def he_init(module: nn.Module) -> None:
    """He et al.'s initialization (N(0, 2 / fan_in), biases 0), which Ronneberger et al. use: networks
    without normalization layers need it (pix2pix's N(0, 0.02) shrinks their signal layer by layer)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
