"""JPEG members decoded on the GPU: torchvision's nvjpeg path, when it is installed on a CUDA box.

The loader workers then pass JPEG members on as bytes (`LoaderConfig.jpeg_on_device`) and
`train.loader.to_device` decodes a whole batch at once on the device; PNG members (line art, hints)
are still decoded by OpenCV in the workers.
"""

from __future__ import annotations

import functools

import torch

JPEG_DECODERS = ("auto", "opencv", "nvjpeg")


@functools.cache
def nvjpeg_available() -> bool:
    """Whether torchvision's batched GPU JPEG decoder can run here (CUDA and a working torchvision)."""
    if not torch.cuda.is_available():
        return False
    try:
        import torchvision.io  # noqa: PLC0415 - optional
    except Exception:  # noqa: BLE001 - missing, or built for another torch
        return False
    return hasattr(torchvision.io, "decode_jpeg")


def jpeg_on_device(choice: str, device: torch.device) -> bool:
    """Whether JPEG members go to `device` undecoded: "auto" when nvjpeg can run there, "nvjpeg" (an
    error when it cannot), "opencv" never."""
    if choice not in JPEG_DECODERS:
        raise ValueError(f"--jpeg-decoder {choice!r}: choose from {', '.join(JPEG_DECODERS)}")
    if choice == "opencv":
        return False
    usable = device.type == "cuda" and nvjpeg_available()
    if choice == "nvjpeg" and not usable:
        raise ValueError("--jpeg-decoder nvjpeg needs a CUDA device and torchvision built for this torch (pip install torchvision)")
    return usable


def decode_jpegs(data: list[torch.Tensor], channels: int, device: torch.device | str) -> torch.Tensor:
    """uint8 (B, channels, H, W) on `device` from a batch of JPEG byte tensors of one size."""
    from torchvision.io import ImageReadMode, decode_jpeg  # noqa: PLC0415 - optional

    mode = ImageReadMode.RGB if channels == 3 else ImageReadMode.GRAY
    return torch.stack(decode_jpeg(data, mode=mode, device=device))
