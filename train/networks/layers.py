"""Small constructors the generators and discriminators share: normalization by name, upsampling by name."""

from __future__ import annotations

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
