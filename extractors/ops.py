"""Tensor building blocks shared by the extractors, written to agree with OpenCV's definitions.

Every op takes and returns batch tensors (B, C, H, W) on the input's device; nothing moves data
between devices. Where OpenCV fixes a convention (kernel sizes chosen from sigma, the reflect-101
border, the fixed-point grey weights, the anchor of even-sized kernels) these ops follow it, so the
classic methods can be checked against a plain OpenCV loop.

The Gaussian blur is an explicit sum over shifted slices rather than a convolution call: every output
element is then computed by the same sequence of float operations whatever the batch size or device,
so a sample re-run alone reproduces its batched result bit for bit.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# OpenCV's fixed-point RGB -> grey weights for 8-bit images: ITU-R BT.601 (0.299, 0.587, 0.114)
# scaled by 2^15 (RY15, GY15, BY15 in OpenCV 4's color_rgb code), rounded by adding half.
_GRAY_SHIFT = 15
_GRAY_WEIGHTS_RGB = (9798, 19235, 3735)


def check_batch(images: torch.Tensor, channels: int | None = None, name: str = "images") -> None:
    """Raise a ValueError unless `images` is a (B, C, H, W) tensor (with C == channels if given)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(images.shape)}")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"{name} must have {channels} channel(s), got shape {tuple(images.shape)}")


def check_uint8_rgb(images: torch.Tensor) -> None:
    check_batch(images, channels=3)
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 RGB, got {images.dtype}")


def per_sample(value: float | torch.Tensor | list, batch: int, device: torch.device) -> torch.Tensor:
    """A float64 tensor of shape (B,) on `device` from a scalar, a list or a (B,) tensor."""
    tensor = torch.as_tensor(value, dtype=torch.float64, device=device)
    if tensor.ndim == 0:
        tensor = tensor.expand(batch)
    if tensor.shape != (batch,):
        raise ValueError(f"expected one value per sample ({batch}), got shape {tuple(tensor.shape)}")
    return tensor


def rgb_to_gray_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,3,H,W) RGB -> uint8 (B,1,H,W) grey, bit-identical to cv2.cvtColor(..., COLOR_RGB2GRAY)."""
    check_uint8_rgb(images)
    wide = images.to(torch.int32)
    r, g, b = wide[:, 0:1], wide[:, 1:2], wide[:, 2:3]
    red, green, blue = _GRAY_WEIGHTS_RGB
    gray = (r * red + g * green + b * blue + (1 << (_GRAY_SHIFT - 1))) >> _GRAY_SHIFT
    return gray.to(torch.uint8)


def to_uint8(values: torch.Tensor) -> torch.Tensor:
    """Float in [0, 1] -> uint8 0-255, rounding half to even (as NumPy's round does)."""
    return (values * 255.0).round().clamp(0, 255).to(torch.uint8)


def opencv_gaussian_ksize(sigma: float, for_uint8: bool) -> int:
    """The kernel size cv2.GaussianBlur picks for ksize=(0, 0): 3 sigma each side for uint8, 4 for float."""
    return (round(sigma * (3 if for_uint8 else 4) * 2 + 1)) | 1


def gaussian_kernel1d(sigma: float, ksize: int) -> np.ndarray:
    """cv2.getGaussianKernel(ksize, sigma) in float64 (normalized to sum 1)."""
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) * 0.5
    weights = np.exp(-0.5 / (sigma * sigma) * x * x)
    return weights / weights.sum()


def gaussian_blur(images: torch.Tensor, sigma: float | torch.Tensor | list) -> torch.Tensor:
    """cv2.GaussianBlur(img, (0, 0), sigma) for float images: OpenCV's kernel size rule, reflect-101 border.

    `images` is float (B, C, H, W); `sigma` one value or one per sample.
    """
    check_batch(images)
    weights, radius = _gaussian_weights(images, sigma, fixed_point=False)
    out = _correlate_1d(images, weights, radius, dim=-1)
    return _correlate_1d(out, weights, radius, dim=-2)


def gaussian_blur_fast(images: torch.Tensor, sigma: float | torch.Tensor | list) -> torch.Tensor:
    """`gaussian_blur` where OpenCV parity is not the point (synthesis): on CPU through
    cv2.GaussianBlur itself (same kernel and border, several times faster than the tap loop; equal up
    to float rounding), elsewhere `gaussian_blur`."""
    check_batch(images)
    if images.device.type != "cpu":
        return gaussian_blur(images, sigma)
    batch, channels, height, width = images.shape
    sigmas = per_sample(sigma, batch, images.device).tolist()
    if min(sigmas) <= 0:
        raise ValueError(f"sigma must be > 0, got {min(sigmas)}")
    out = torch.empty_like(images)
    for index, value in enumerate(sigmas):
        planes = images[index].permute(1, 2, 0).contiguous().numpy()
        blurred = cv2.GaussianBlur(planes, (0, 0), value, borderType=cv2.BORDER_REFLECT_101)
        out[index] = torch.from_numpy(blurred.reshape(height, width, channels)).permute(2, 0, 1)
    return out


def gaussian_kernel_fixed_point(sigma: float, ksize: int, fraction_bits: int = 8) -> np.ndarray:
    """The integer kernel OpenCV's bit-exact 8-bit GaussianBlur uses (sums to 2^fraction_bits).

    Taps are rounded from the outside in, each carrying the previous rounding error forward, and
    mirrored; the centre takes what is left (OpenCV's getGaussianKernelFixedPoint_ED).
    """
    weights = gaussian_kernel1d(sigma, ksize) * (1 << fraction_bits)
    fixed = np.zeros(ksize, dtype=np.int64)
    carried = 0.0
    for tap in range(ksize // 2):
        wanted = weights[tap] + carried
        value = int(np.round(wanted))  # round half to even, as cvRound
        carried = wanted - value
        fixed[tap] = fixed[ksize - 1 - tap] = value
    fixed[ksize // 2] = (1 << fraction_bits) - 2 * int(fixed[: ksize // 2].sum())
    return fixed


def gaussian_blur_uint8(images: torch.Tensor, sigma: float | torch.Tensor | list) -> torch.Tensor:
    """cv2.GaussianBlur(img, (0, 0), sigma) on 8-bit images, bit for bit.

    OpenCV blurs 8-bit images in fixed point: 8 fractional bits per pass, rows then columns, one
    rounding at the end. Doing the same integer arithmetic here gives its exact output.
    """
    check_batch(images)
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {images.dtype}")
    weights, radius = _gaussian_weights(images, sigma, fixed_point=True)
    wide = images.to(torch.int32)
    rows = _correlate_1d(wide, weights, radius, dim=-1)  # 8 fractional bits, at most 255 * 256
    both = _correlate_1d(rows, weights, radius, dim=-2)  # 16 fractional bits
    return ((both + (1 << 15)) >> 16).to(torch.uint8)


def _gaussian_weights(images: torch.Tensor, sigma: float | torch.Tensor | list, fixed_point: bool) -> tuple[torch.Tensor, int]:
    """Each sample's Gaussian taps as one row of a (B, K) table on the images' device, and its radius K // 2.

    Kernel sizes follow OpenCV's rule for the image type; `fixed_point` gives the integer taps of its
    8-bit blur (int32), otherwise float taps in the images' dtype. Raises a ValueError for a sigma <= 0
    or an image no larger than the radius.
    """
    batch = images.shape[0]
    sigmas = per_sample(sigma, batch, images.device).tolist()
    if min(sigmas) <= 0:
        raise ValueError(f"sigma must be > 0, got {min(sigmas)}")
    sizes = [opencv_gaussian_ksize(s, for_uint8=fixed_point) for s in sigmas]
    largest = max(sizes)
    kernel = gaussian_kernel_fixed_point if fixed_point else gaussian_kernel1d
    # Shorter kernels are centred inside the longest with zero weights: adding exact zeros leaves
    # every sum unchanged, so a sample's result does not depend on what it is batched with.
    table = np.zeros((batch, largest), dtype=np.int64 if fixed_point else np.float64)
    for row, (s, size) in enumerate(zip(sigmas, sizes)):
        offset = (largest - size) // 2
        table[row, offset : offset + size] = kernel(s, size)
    weights = torch.as_tensor(table, dtype=torch.int32 if fixed_point else images.dtype, device=images.device)
    radius = largest // 2
    if radius >= min(images.shape[-2:]):
        raise ValueError(f"image {tuple(images.shape[-2:])} too small for a Gaussian of sigma {max(sigmas)}")
    return weights, radius


def _correlate_1d(images: torch.Tensor, weights: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    pad = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
    # torch's reflect is OpenCV's BORDER_REFLECT_101. It wants floats; the integers blurred here
    # stay below 2^24, so the round trip through float32 is exact.
    if images.is_floating_point():
        padded = F.pad(images, pad, mode="reflect")
    else:
        padded = F.pad(images.to(torch.float32), pad, mode="reflect").to(images.dtype)
    length = images.shape[dim]
    # Separate multiply and add into preallocated buffers: no fused multiply-add (whose rounding could
    # differ between vectorized and tail elements) and no fresh allocation per tap.
    out = torch.zeros_like(images)
    product = torch.empty_like(images)
    for tap in range(weights.shape[1]):
        torch.mul(padded.narrow(dim, tap, length), weights[:, tap].view(-1, 1, 1, 1), out=product)
        out.add_(product)
    return out


def dilate(images: torch.Tensor, size: int) -> torch.Tensor:
    """Grey dilation by a size x size square, as cv2.dilate with a ones kernel (anchor at size // 2).

    Works on float tensors; pixels outside the image are ignored (OpenCV's default border for dilate).
    """
    check_batch(images)
    if size < 1:
        raise ValueError(f"kernel size must be >= 1, got {size}")
    before, after = size // 2, size - 1 - size // 2
    padded = F.pad(images, (before, after, before, after), value=-math.inf)
    return F.max_pool2d(padded, kernel_size=size, stride=1)


def histogram_uint8(images: torch.Tensor) -> torch.Tensor:
    """Per-sample 256-bin histograms of uint8 (B, 1, H, W) -> int64 (B, 256)."""
    check_batch(images, channels=1)
    flat = images.reshape(images.shape[0], -1).to(torch.int64)
    counts = torch.zeros(images.shape[0], 256, dtype=torch.int64, device=images.device)
    return counts.scatter_add_(1, flat, torch.ones_like(flat))
