"""The generator's exponential moving average, with timm's warm-up so short runs are not all initial weights.

torch.optim.swa_utils.AveragedModel keeps the copy; the average function uses
decay_t = min(decay, (1 + t) / (10 + t)) at update t, so early updates follow the model closely.
"""

from __future__ import annotations

import sys

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


# The trainer's default decay (`TrainConfig.ema_decay`), assumed for checkpoints that do not record one.
DEFAULT_EMA_DECAY = 0.999


def warmup_ema_fn(decay: float):
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], model_params: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        t = float(num_averaged)
        current = min(decay, (1.0 + t) / (10.0 + t))
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(ema_params, model_params, 1.0 - current)
        else:  # integer buffers (BatchNorm's batch counter) take the model's value
            for ema, model in zip(ema_params, model_params):
                ema.copy_(model)

    return update


def warm_after(decay: float) -> int:
    """Steps after which the EMA counts as warmed up: 1 / (1 - decay), its averaging horizon (1000 at
    0.999). Before that it still leans on the first, barely trained weights (a flat grey output)."""
    return round(1.0 / (1.0 - decay)) if decay < 1.0 else sys.maxsize


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    return AveragedModel(model, multi_avg_fn=warmup_ema_fn(decay), use_buffers=True)
