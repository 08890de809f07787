"""Images to FID Inception features, with the reference preprocessing.

uint8 RGB in; resized to 299 x 299 with TensorFlow 1.x's bilinear resize (the one inside the
original FID graph, which torch-fidelity reproduces): output pixel i samples input position
i * in / out, with no half-pixel offset and the last row and column repeated past the edge; then
scaled by (x - 128) / 128. This is not OpenCV's or PyTorch's bilinear resize, which sample at
(i + 0.5) * in / out - 0.5.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from train.networks.inception import INPUT_SIZE, FIDInception


def _legacy_taps(in_size: int, out_size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output pixel: the two source pixels and the weight of the second."""
    # float32 throughout, as TensorFlow's kernel computes the scale and the source positions.
    scale = torch.tensor(in_size, dtype=torch.float32) / torch.tensor(out_size, dtype=torch.float32)
    position = torch.arange(out_size, dtype=torch.float32) * scale
    lower = position.floor().long().clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    return lower.to(device), upper.to(device), (position - position.floor()).to(device)


def resize_like_tensorflow(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """Float (B, C, H, W) -> (B, C, size, size) with TensorFlow 1.x's ResizeBilinear (align_corners=False).

    The same arithmetic in the same order as the kernel (each row pair interpolated across, then
    down), in float32, so the result agrees with it to float32 rounding.
    """
    images = images.float()
    if tuple(images.shape[-2:]) == (size, size):
        return images
    top, bottom, y_weight = _legacy_taps(images.shape[-2], size, images.device)
    left, right, x_weight = _legacy_taps(images.shape[-1], size, images.device)
    rows_top, rows_bottom = images[..., top, :], images[..., bottom, :]
    upper = rows_top[..., left] + (rows_top[..., right] - rows_top[..., left]) * x_weight
    lower = rows_bottom[..., left] + (rows_bottom[..., right] - rows_bottom[..., left]) * x_weight
    return upper + (lower - upper) * y_weight[:, None]


class InceptionFeatures:
    """pool3 features of uint8 RGB batches, computed on `device` in chunks of `batch_size`."""

    def __init__(self, model: FIDInception, device: torch.device | str = "cpu", batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 RGB images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        return (resize_like_tensorflow(images.to(self.device)) - 128.0) / 128.0

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        with full_float32():
            chunks = [self.model.pool_features(self.preprocess(images[i : i + self.batch_size])).double().cpu().numpy() for i in range(0, images.shape[0], self.batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, 2048))


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """No TF32 inside: on Ampere and later GPUs, PyTorch's default TF32 convolutions keep 10 mantissa
    bits and move the features (and the FID) away from the float32 reference."""
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
