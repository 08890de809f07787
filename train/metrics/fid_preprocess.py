"""uint8 RGB images to the FID Inception's input, as each published FID implementation prepares them.

FID numbers are comparable only when computed the same way, and the three implementations people
publish with differ before the network (the network and its weights are the same):

- `tf`: TensorFlow 1.x's bilinear resize to 299 x 299 (the one inside the original FID graph),
  then (x - 128) / 128. The original TensorFlow code, and torch-fidelity, which reproduces it.
- `pytorch-fid`: x / 255, PyTorch's bilinear `F.interpolate` to 299 x 299 (half-pixel centres,
  align_corners=False), then 2 x - 1. Most FIDs published from PyTorch code come from here.
- `clean`: clean-fid's default mode: each channel resized to 299 x 299 in float by PIL's bicubic
  filter (antialiased when shrinking), clipped to [0, 255], then (x - 128) / 128.

The two normalizations differ even without a resize: 2 (x / 255) - 1 maps 255 to 1 and 128 to
0.0039, (x - 128) / 128 maps 255 to 0.9922 and 128 to 0.

On the CPU the resizes work on a few planes at a time (the chunk and its temporaries stay in cache;
`pytorch-fid` on whole images, since F.interpolate's CPU rounding depends on how its input is
grouped, and pytorch-fid hands it whole images); on a GPU the whole batch goes at once. Either way
the values are the same, and so is the output's memory layout: standard contiguous (B, 3, 299, 299)
whatever the input's, so the convolutions always take the same kernels (channels_last input takes
others, moving features by up to 1e-4).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from train.networks.inception import INPUT_SIZE

# name: what it is, for the command output and the report.
FID_IMPLS = {
    "tf": "TensorFlow 1.x bilinear resize to 299, (x - 128) / 128: the original FID code and torch-fidelity",
    "pytorch-fid": "x / 255, torch bilinear interpolate (align_corners=False) to 299, 2x - 1: pytorch-fid",
    "clean": "PIL bicubic resize in float per channel to 299, clipped to [0, 255], (x - 128) / 128: clean-fid's clean mode",
}
DEFAULT_FID_IMPL = "tf"

# On the CPU, work on this many values at a time (a few MB: the chunk and its temporaries stay in cache).
_CHUNK_VALUES = 1 << 18


def check_impl(impl: str) -> str:
    if impl not in FID_IMPLS:
        raise ValueError(f"--fid-impl must be one of: {', '.join(FID_IMPLS)} (got {impl!r})")
    return impl


def _planewise(images: torch.Tensor, size: int, resize: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, size, size) by `resize` of (P, H, W) planes: all at once on a GPU, a
    few at a time on the CPU."""
    batch, channels, height, width = images.shape
    planes = images.contiguous().view(batch * channels, height, width)
    if images.device.type != "cpu":
        return resize(planes).contiguous().view(batch, channels, size, size)
    out = torch.empty(batch * channels, size, size, dtype=torch.float32)
    step = max(1, _CHUNK_VALUES // (height * width))
    for start in range(0, planes.shape[0], step):
        out[start : start + step] = resize(planes[start : start + step])
    return out.view(batch, channels, size, size)


# ----------------------------------------------------------------------------- tf
def _legacy_taps(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output pixel: the two source pixels and the weight of the second."""
    # float32 throughout, as TensorFlow's kernel computes the scale and the source positions.
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    position = torch.arange(out_size, dtype=torch.float32) * scale
    lower = position.floor().long().clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower.to(device), upper.to(device), (position - position.floor()).to(device)


def resize_like_tensorflow(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """(B, C, H, W) uint8 or float -> float32 (B, C, size, size), TensorFlow 1.x's ResizeBilinear
    (align_corners=False, no half-pixel centres): output pixel i samples input position i * in / out,
    the last row and column repeated past the edge.

    The same arithmetic in the same order as TensorFlow's kernel, in float32: each row pair across
    (top + (right - left) * dx), then down; so equal to it to float32 rounding, and bit-equal to
    torch-fidelity's copy of it.
    """
    if images.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(images.shape)}")
    if tuple(images.shape[-2:]) == (size, size):
        return images.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    top, bottom, y_weight = _legacy_taps(images.shape[-2], size, images.device)
    left, right, x_weight = _legacy_taps(images.shape[-1], size, images.device)
    y_weight = y_weight[:, None]

    def resize(planes: torch.Tensor) -> torch.Tensor:
        start = planes.index_select(-1, left).float()
        across = planes.index_select(-1, right).float().sub_(start).mul_(x_weight).add_(start)
        upper = across.index_select(-2, top)
        return across.index_select(-2, bottom).sub_(upper).mul_(y_weight).add_(upper)

    return _planewise(images, size, resize)


# ----------------------------------------------------------------------------- clean
def _bicubic(x: np.ndarray) -> np.ndarray:
    """PIL's bicubic kernel (a = -0.5), term by term in its order."""
    a = -0.5
    x = np.abs(x)
    inner = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    outer = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, inner, np.where(x < 2.0, outer, 0.0))


@lru_cache(maxsize=16)
def pil_bicubic_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's resampling coefficients (Resample.c, precompute_coeffs) for the bicubic filter: per
    output pixel, `ksize` source indices (clamped; unused taps weigh 0) and float64 weights."""
    support_of_filter = 2.0
    scale = float(in_size) / out_size
    filter_scale = max(scale, 1.0)
    support = support_of_filter * filter_scale
    ksize = int(np.ceil(support)) * 2 + 1
    indices = np.zeros((out_size, ksize), np.int64)
    weights = np.zeros((out_size, ksize), np.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        first = max(int(center - support + 0.5), 0)  # C's (int) truncates; negatives end at 0 either way
        count = min(int(center + support + 0.5), in_size) - first
        taps = _bicubic(((np.arange(count) + first) - center + 0.5) * (1.0 / filter_scale))
        total = 0.0
        for w in taps:  # summed in order, as PIL does
            total += w
        if total != 0.0:
            taps = taps / total
        indices[out, :count], weights[out, :count] = np.arange(count) + first, taps
        indices[out, count:] = first  # weight 0
    return indices, weights


def resize_like_pil_bicubic(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """(B, C, H, W) uint8 or float in [0, 255] -> float32 (B, C, size, size): every channel as a PIL
    mode-"F" image resized with Image.BICUBIC, then clipped to [0, 255] (clean-fid's "clean" resize).

    Same arithmetic as PIL's: two passes, each a float64 sum over the taps in PIL's order, stored as
    float32; so bit-equal to PIL's output.
    """
    if images.ndim != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(images.shape)}")
    height, width = images.shape[-2:]
    device = images.device
    x_index, x_weight = (torch.from_numpy(t).to(device) for t in pil_bicubic_taps(width, size))
    y_index, y_weight = (torch.from_numpy(t).to(device) for t in pil_bicubic_taps(height, size))

    def down_rows(planes: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """One pass along dim -2 (each gather copies whole rows): float64 sums over the taps in
        order, then float32, as PIL stores its intermediate and output images."""
        total = None
        for tap in range(index.shape[1]):
            term = planes.index_select(-2, index[:, tap]).double().mul_(weight[:, tap, None])
            total = term if total is None else total.add_(term)
        return total.float()

    # Pillow (11.1 and later) runs the vertical pass first when the height shrinks by more than twice
    # as many pixels as the width; before, always the horizontal one. The order moves a value by at
    # most a float32 rounding.
    vertical_first = height - size > 0 and height - size > (width - size) * 2

    def resize(planes: torch.Tensor) -> torch.Tensor:
        if vertical_first:
            planes = down_rows(planes, y_index, y_weight)
        if width != size:  # the horizontal pass on the transposed planes
            planes = down_rows(planes.transpose(-1, -2).contiguous(), x_index, x_weight).transpose(-1, -2)
        if height != size and not vertical_first:
            planes = down_rows(planes.contiguous(), y_index, y_weight)
        return planes.float().clamp(0.0, 255.0)

    return _planewise(images, size, resize)


# ----------------------------------------------------------------------------- the three
def _tf(images: torch.Tensor) -> torch.Tensor:
    return resize_like_tensorflow(images).sub_(128.0).div_(128.0)


def _pytorch_fid(images: torch.Tensor) -> torch.Tensor:
    """x / 255, F.interpolate on whole (n, 3, H, W) images as pytorch-fid calls it (its CPU kernel
    rounds differently when handed single planes), 2x - 1."""
    batch, channels, height, width = images.shape
    if (height, width) == (INPUT_SIZE, INPUT_SIZE):
        return images.float().div_(255.0).mul_(2.0).sub_(1.0)
    step = batch if images.device.type != "cpu" else max(1, _CHUNK_VALUES // (channels * height * width))
    out = torch.empty(batch, channels, INPUT_SIZE, INPUT_SIZE, dtype=torch.float32, device=images.device)
    for start in range(0, batch, step):
        unit = images[start : start + step].float().div_(255.0)
        out[start : start + step] = F.interpolate(unit, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False).mul_(2.0).sub_(1.0)
    return out


def _clean(images: torch.Tensor) -> torch.Tensor:
    return resize_like_pil_bicubic(images).sub_(128.0).div_(128.0)


_PREPROCESS = {"tf": _tf, "pytorch-fid": _pytorch_fid, "clean": _clean}


def fid_input(images: torch.Tensor, impl: str = DEFAULT_FID_IMPL) -> torch.Tensor:
    """uint8 RGB (B, 3, H, W), any memory layout -> the network's float32 (B, 3, 299, 299) input,
    standard contiguous, prepared as `impl` prepares it."""
    check_impl(impl)
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 RGB images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    return _PREPROCESS[impl](images.contiguous()).contiguous()
