"""sketchKeras line extraction around the network: its exact preprocessing and its three post-processings.

Preprocessing (sketchKeras's helper.py): per colour channel, the channel minus its 8-bit sigma-3
Gaussian blur, divided by 128; everything divided by the single maximum over the three channels;
each channel then run as its own one-channel image on a 512x512 canvas, padded with zeros at the
bottom and right. The line strength is the maximum of the three outputs. Post-processing: `raw`
(as is), `enhanced` (strengths under 0.1 set to 0), `pured` (under 0.18); then 255 * (1 - strength),
clipped and truncated to 8 bits.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from extractors.ops import check_uint8_rgb, gaussian_blur_uint8

CANVAS = 512
BLUR_SIGMA = 3.0
MODES = {"raw": 0.0, "enhanced": 0.1, "pured": 0.18}


def sketchkeras_input(images: torch.Tensor, canvas: int = CANVAS) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> float32 network input (B*3, 1, canvas, canvas), channels in R, G, B order."""
    check_uint8_rgb(images)
    height, width = images.shape[-2:]
    if height > canvas or width > canvas:
        raise ValueError(f"sketchkeras works on images up to {canvas}x{canvas}; got {width}x{height} (resize them first)")
    blurred = gaussian_blur_uint8(images, BLUR_SIGMA)
    light = (images.to(torch.float32) - blurred.to(torch.float32)) / 128.0
    peak = light.amax(dim=(1, 2, 3), keepdim=True)
    # A flat image would divide by zero (sketchKeras would produce NaNs): it has no lines.
    light = torch.where(peak > 0, light / peak.clamp(min=1e-12), torch.zeros_like(light))
    light = F.pad(light, (0, canvas - width, 0, canvas - height))
    return light.reshape(-1, 1, canvas, canvas)


def line_strength(network: nn.Module, images: torch.Tensor, canvas: int = CANVAS, max_network_batch: int | None = None, autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The channel-maximum network output, float32 (B,1,H,W) cropped to the input size."""
    batch, _, height, width = images.shape
    inputs = sketchkeras_input(images, canvas)
    step = max_network_batch or inputs.shape[0]
    outputs = []
    with torch.inference_mode():
        for start in range(0, inputs.shape[0], step):
            chunk = inputs[start : start + step]
            if autocast_dtype is not None:
                with torch.autocast(device_type=chunk.device.type, dtype=autocast_dtype):
                    outputs.append(network(chunk).float())
            else:
                outputs.append(network(chunk))
    out = torch.cat(outputs).reshape(batch, 3, canvas, canvas)[..., :height, :width]
    return out.amax(dim=1, keepdim=True)


def strength_to_lines(strength: torch.Tensor, mode: str | list[str] = "raw") -> torch.Tensor:
    """sketchKeras's post-processing: float strength (B,1,H,W) -> uint8 lines; `mode` one or one per sample."""
    modes = [mode] * strength.shape[0] if isinstance(mode, str) else list(mode)
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise ValueError(f"unknown sketchkeras mode {unknown[0]!r}; choose from {', '.join(MODES)}")
    cutoff = torch.tensor([MODES[m] for m in modes], dtype=strength.dtype, device=strength.device).view(-1, 1, 1, 1)
    kept = torch.where(strength < cutoff, torch.zeros_like(strength), strength)
    # float -> uint8 truncates, as NumPy's astype(np.uint8) did in sketchKeras.
    return ((1.0 - kept) * 255.0).clamp(0, 255).floor().to(torch.uint8)


def extract_sketchkeras(
    images: torch.Tensor,
    network: nn.Module,
    mode: str | list[str] = "raw",
    canvas: int = CANVAS,
    max_network_batch: int | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """uint8 RGB (B,3,H,W) -> uint8 lines (B,1,H,W) with a converted sketchKeras `network` on the images' device."""
    strength = line_strength(network, images, canvas, max_network_batch, autocast_dtype)
    return strength_to_lines(strength, mode)
