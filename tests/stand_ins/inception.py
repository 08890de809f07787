"""Random weights in the published FID Inception file's layout, for tests and timing without the real file."""

from __future__ import annotations

import torch

from train.networks.inception import FIDInception


def stand_in_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the published file's layout (no BatchNorm counters), for timing and tests
    where the real file is absent: He-initialized convolutions keep the activations at a sane scale."""
    generator = torch.Generator().manual_seed(seed)
    model = FIDInception()
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("conv.weight"):
            fan_in = value[0].numel()
            value = torch.randn(value.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif key.endswith("running_var"):
            value = 0.5 + torch.rand(value.shape, generator=generator)
        elif key.endswith(("running_mean", "bn.bias")):
            value = 0.1 * torch.randn(value.shape, generator=generator)
        state[key] = value
    return state
