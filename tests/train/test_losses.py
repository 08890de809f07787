"""Adversarial losses against their definitions, label flipping rate, weight clipping, the image pool."""

from __future__ import annotations

import math

import pytest
import torch

from tests.synth.stats import assert_share
from train.losses import ImagePool, adversarial_loss, clip_weights


def test_losses_match_their_definitions():
    logits = torch.tensor([[-2.0, 0.0, 3.0]])
    real_bce = sum(math.log1p(math.exp(-x)) for x in (-2.0, 0.0, 3.0)) / 3
    assert adversarial_loss("vanilla", logits, real=True).item() == pytest.approx(real_bce)
    assert adversarial_loss("lsgan", logits, real=False).item() == pytest.approx((4 + 0 + 9) / 3)
    assert adversarial_loss("wgan", logits, real=True).item() == pytest.approx(-1 / 3)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        adversarial_loss("hinge2", logits, real=True)


def test_label_flipping_swaps_the_requested_share_of_targets():
    logits = torch.zeros((1, 1, 100, 100))
    # With lsgan on zero logits, each flipped "real" target (1 -> 0) contributes 0 instead of 1.
    loss = adversarial_loss("lsgan", logits, real=True, flip=0.1, generator=torch.Generator().manual_seed(0))
    flipped = round((1 - loss.item()) * logits.numel())
    assert_share(flipped, logits.numel(), 0.1, "flipped labels")


def test_weight_clipping_bounds_every_parameter():
    layer = torch.nn.Linear(8, 8)
    torch.nn.init.normal_(layer.weight, std=1.0)
    clip_weights(layer, 0.01)
    assert all(p.abs().max() <= 0.01 for p in layer.parameters())


def test_image_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(size=4)
    first = torch.arange(4.0).view(4, 1)
    assert torch.equal(pool.query(first), first)
    returned = torch.cat([pool.query(torch.full((1, 1), 100.0 + i)) for i in range(2000)])
    from_pool = int((returned < 100).sum()) + int(((returned >= 100) & (returned != torch.arange(100.0, 2100.0).view(-1, 1))).sum())
    assert_share(from_pool, 2000, 0.5, "pool swaps")
    state = pool.state_dict()
    again = ImagePool(size=4)
    again.load_state_dict(state)
    probe = torch.full((8, 1), 7.0)
    assert torch.equal(pool.query(probe), again.query(probe))
