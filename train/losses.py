"""Adversarial losses and the discriminator's image pool, as the recipes use them.

`adversarial_loss(kind, logits, real)`: `vanilla` is the cross-entropy GAN (on logits), `lsgan` the
least-squares GAN, `wgan` the Wasserstein critic (pair it with `clip_weights`). `flip` swaps a share
of the discriminator's labels (label flipping, as Cheng's 2-stage cGAN does at 5-10%).
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

GAN_LOSSES = ("vanilla", "lsgan", "wgan")


def adversarial_loss(kind: str, logits: torch.Tensor, real: bool, flip: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Loss pushing `logits` towards "real" (True) or "fake" (False).

    With `flip` > 0 each logit's target is swapped with that probability (discriminator steps only).
    """
    if kind == "wgan":
        if flip:
            raise ValueError("label flipping has no meaning for the Wasserstein loss")
        return -logits.mean() if real else logits.mean()
    target = torch.full_like(logits, 1.0 if real else 0.0)
    if flip:
        swap = torch.rand(logits.shape, generator=generator, device="cpu").to(logits.device) < flip
        target = torch.where(swap, 1.0 - target, target)
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(GAN_LOSSES)}")


@torch.no_grad()
def clip_weights(module: nn.Module, limit: float = 0.01) -> None:
    """WGAN's Lipschitz constraint by weight clipping (Arjovsky et al. use [-0.01, 0.01])."""
    for parameter in module.parameters():
        parameter.clamp_(-limit, limit)


class ImagePool:
    """A buffer of generated images shown to the discriminator (Shrivastava et al.; pix2pix/CycleGAN use 50).

    Until full, images pass through and are stored. Then each image is, with probability 1/2,
    swapped with a random stored one (the stored one is returned), else returned as is.
    """

    def __init__(self, size: int = 50, rng: random.Random | None = None) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = rng or random.Random(0)

    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for image in batch.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.random() < 0.5:
                index = self.rng.randrange(self.size)
                out.append(self.images[index].clone())
                self.images[index] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": [i.cpu() for i in self.images], "rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        self.images = [i.clone() for i in state["images"]]
        self.rng.setstate(state["rng"])
