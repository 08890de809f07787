"""Images to FID Inception features, with the preprocessing of the chosen FID implementation.

uint8 RGB in, in any memory layout; prepared as `impl` prepares it (train.metrics.fid_preprocess:
`tf`, the default, is the original TensorFlow code's and torch-fidelity's TensorFlow 1.x bilinear
resize to 299 x 299 and (x - 128) / 128; `pytorch-fid` and `clean` are those packages' own), handed
to the network in the standard contiguous layout, in float32 without TF32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

from train.metrics.fid_preprocess import DEFAULT_FID_IMPL, FID_IMPLS, check_impl, fid_input, resize_like_tensorflow
from train.networks.inception import FEATURE_DIM, FIDInception

__all__ = ["InceptionFeatures", "full_float32", "resize_like_tensorflow"]


class InceptionFeatures:
    """pool3 features of uint8 RGB batches, computed on `device` in chunks of `batch_size`, with the
    preprocessing of FID implementation `impl` (one of FID_IMPLS)."""

    def __init__(self, model: FIDInception, device: torch.device | str = "cpu", batch_size: int = 32, impl: str = DEFAULT_FID_IMPL) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size
        self.impl = check_impl(impl)

    @property
    def description(self) -> str:
        return FID_IMPLS[self.impl]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> the network's float32 (B, 3, 299, 299) input, standard contiguous."""
        return fid_input(images.to(self.device), self.impl)

    @torch.no_grad()
    def network_features(self, inputs: torch.Tensor) -> np.ndarray:
        """Prepared (B, 3, 299, 299) inputs -> float64 (B, 2048), in chunks of `batch_size`."""
        with full_float32():
            chunks = [self.model.pool_features(inputs[i : i + self.batch_size].to(self.device).contiguous()).double().cpu().numpy()
                      for i in range(0, inputs.shape[0], self.batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 RGB images (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        chunks = [self.network_features(self.preprocess(images[i : i + self.batch_size])) for i in range(0, images.shape[0], self.batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM))


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
