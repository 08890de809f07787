"""Which torch device a run uses, from the name a user gives (auto, cpu, cuda, cuda:N)."""

from __future__ import annotations

import os

import torch

from train.errors import TrainingError


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present (this process's LOCAL_RANK under torchrun), else the CPU."""
    if name == "auto":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise TrainingError(f"--device {name!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name}: this PyTorch build sees no CUDA device (torch {torch.__version__}); use --device cpu")
    return device
