"""The Line Detection Model (LDM) of Lee & Lee 2020: an autoencoder from colour 128x128 to grey line art.

Lee & Lee train it to reproduce line art from colour images, then use it as one more extraction
method (and, in their generator loss, to compare the line structure of outputs and targets). This
module defines the network so that `pipe extract --method ldm` and the trainer share it, and the
checkpoint format both read and write.

The paper gives the model's role and sizes, not a layer table in machine-readable form; the network
here is a U-Net-style encoder-decoder of that shape: stride-2 4x4 convolutions down (BatchNorm,
LeakyReLU), nearest upsampling and 3x3 convolutions up (BatchNorm, ReLU) with skip connections, and a
sigmoid output where 1 is paper and 0 is ink.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from extractors.ops import check_uint8_rgb, to_uint8
from extractors.weights import load_tensor_file

FORMAT = "pipe.ldm/1"
# What a file given as the LDM's weights must be (the one line a wrong file gets).
WHAT = "an LDM checkpoint: give the ldm.pt that `pipe train ldm ROOT --recipe lee2020` writes"


@dataclass(frozen=True)
class LdmConfig:
    size: int = 128
    base_channels: int = 32
    depth: int = 4
    max_channels: int = 256

    def __post_init__(self) -> None:
        if self.size % (1 << self.depth):
            raise ValueError(f"size {self.size} must be divisible by 2^depth = {1 << self.depth}")


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class LineDetectionModel(nn.Module):
    """RGB in [0, 1], (B, 3, size, size) -> line image in [0, 1], (B, 1, size, size)."""

    def __init__(self, config: LdmConfig = LdmConfig()) -> None:
        super().__init__()
        self.config = config
        widths = [min(config.base_channels << level, config.max_channels) for level in range(config.depth + 1)]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 1, 1), nn.LeakyReLU(0.2))
        self.down = nn.ModuleList(_down(widths[i], widths[i + 1]) for i in range(config.depth))
        self.up = nn.ModuleList(
            _up(widths[i + 1] if i == config.depth - 1 else widths[i + 1] * 2, widths[i]) for i in reversed(range(config.depth))
        )
        self.head = nn.Conv2d(widths[0] * 2, 1, 3, 1, 1)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        x = self.stem(rgb * 2.0 - 1.0)
        skips = [x]
        for block in self.down:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.up:
            x = torch.cat([skips.pop(), block(x)], dim=1)
        return torch.sigmoid(self.head(x))


def extract_ldm(images: torch.Tensor, model: LineDetectionModel) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> uint8 lines (B,1,size,size): the image is area-resized to the model's size."""
    check_uint8_rgb(images)
    size = model.config.size
    rgb = images.to(torch.float32) / 255.0
    if tuple(rgb.shape[-2:]) != (size, size):
        rgb = F.interpolate(rgb, size=(size, size), mode="area")
    with torch.inference_mode():
        return to_uint8(model(rgb))


def save_ldm(model: LineDetectionModel, path: Path, extra: dict | None = None) -> None:
    """Write a checkpoint `load_ldm` reads (atomically: a killed write leaves the old file)."""
    payload = {"format": FORMAT, "config": asdict(model.config), "state_dict": model.state_dict(), "extra": extra or {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_ldm(path: Path, device: torch.device | str = "cpu") -> LineDetectionModel:
    payload = load_tensor_file(path, WHAT)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not {WHAT}")
    model = LineDetectionModel(LdmConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"], strict=True)
    return model.to(device).eval()
