"""`palette` hints (Chen et al.'s reference colorization): the top colours of 4 horizontal bands.

The image is cut into 4 bands along its height; each band's colours are quantized (8 levels per
channel) and its 4 most frequent bins kept (ties: lower bin first; a band with fewer colours repeats
its last). Palette image i paints every band with that band's i-th colour: 4 RGB images, 12
channels. The compact form (4 bands x 4 ranks x RGB) is what shards store (`<key>.palette.npy`);
`render_palette` expands it. The RGBA hint is palette image 0 (each band's dominant colour), all given.
"""

from __future__ import annotations

import numpy as np
import torch

from synth.common import HISTOGRAM_LEVELS, DrawInput, SynthContext, bin_color, check_images, color_histogram

BANDS = 4
RANKS = 4


def band_bounds(height: int, bands: int = BANDS) -> list[tuple[int, int]]:
    edges = [round(i * height / bands) for i in range(bands + 1)]
    return list(zip(edges[:-1], edges[1:]))


def top_colors(image: torch.Tensor, bands: int = BANDS, ranks: int = RANKS, levels: int = HISTOGRAM_LEVELS) -> np.ndarray:
    """uint8 (3, H, W) -> uint8 (bands, ranks, 3): each band's most frequent quantized colours."""
    colors = np.zeros((bands, ranks, 3), dtype=np.uint8)
    for band, (top, bottom) in enumerate(band_bounds(image.shape[-2], bands)):
        counts = color_histogram(image[None, :, top:bottom], levels)[0].cpu().numpy()
        order = np.lexsort((np.arange(counts.size), -counts))  # most frequent first, then lower bin
        present = [int(b) for b in order[:ranks] if counts[b] > 0]
        present += [present[-1]] * (ranks - len(present))
        colors[band] = [bin_color(b, levels) for b in present]
    return colors


def draw_palette_hints(rng: np.random.Generator, sample: DrawInput, context: SynthContext) -> dict:
    """Nothing random: the palette is a function of the image. Recorded so the shard is self-describing."""
    return {"colors": top_colors(sample.image).tolist()}


def render_palette(colors: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 (B, bands, ranks, 3) -> uint8 (B, 3 * ranks, H, W): image i paints band b with colour (b, i)."""
    batch, bands, ranks, _ = colors.shape
    rows = torch.zeros(height, dtype=torch.long, device=colors.device)
    for band, (top, bottom) in enumerate(band_bounds(height, bands)):
        rows[top:bottom] = band
    per_row = colors[:, rows]  # (B, H, ranks, 3)
    planes = per_row.permute(0, 2, 3, 1).reshape(batch, ranks * 3, height, 1)
    return planes.expand(batch, ranks * 3, height, width).contiguous()


def apply_palette_hints(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    check_images(images, params)
    colors = torch.as_tensor([p["colors"] for p in params], dtype=torch.uint8, device=images.device)
    first = render_palette(colors, images.shape[-2], images.shape[-1])[:, :3]
    alpha = torch.full_like(first[:, :1], 255)
    return torch.cat([first, alpha], dim=1)
