"""Recipes: each seed system's training setup as a named configuration of the shared building blocks.

A recipe gives, per stage (`draft`, `refine`), what the generator sees, how the generator and the
discriminator are built, the losses and their weights, the optimizer and the default batch and
resolution. The training loop (train.trainer) is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from train.inputs import input_channels
from extractors.ldm import LdmConfig, LineDetectionModel
from train.networks.attention_unet import AttentionUNet, AttentionUNetConfig
from train.networks.dcgan import DCGANConfig, DCGANDiscriminator
from train.networks.resnext_unet import ResNeXtUNet, ResNeXtUNetConfig
from train.networks.patchgan import PatchGANConfig, PatchGANDiscriminator, StridedConfig, StridedDiscriminator
from train.networks.unet import DraftEncodedUNet, UNetConfig, UNetGenerator

STAGES = ("draft", "refine", "ldm")


@dataclass(frozen=True)
class StageRecipe:
    inputs: tuple[str, ...]
    # (input channels, image size, width multiplier) -> generator with 3 outputs in [-1, 1].
    make_generator: Callable[[int, int, float], nn.Module]
    # (condition + image channels, width multiplier) -> logit map; None trains G alone (no GAN).
    make_discriminator: Callable[[int, float], nn.Module] | None = None
    gan_loss: str = "vanilla"
    gan_weight: float = 1.0
    # Reconstruction loss to the truth: "l1" or "l2", and its weight.
    recon_loss: str = "l1"
    recon_weight: float = 100.0
    optimizer: str = "adam"  # or "rmsprop" (WGAN)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    # Standard deviation of Gaussian noise added to D's inputs (real and generated), in [-1, 1] units.
    d_input_noise: float = 0.0
    # One G step per this many D steps (WGAN's n_critic); each step still takes a fresh batch.
    generator_every: int = 1
    # D sees generated pairs through a pool of this many past ones (0: off; pix2pix/CycleGAN use 50).
    image_pool: int = 0
    # Weight of the L1 loss of each guide decoder's image (generators that return GuidedOutput).
    guide_weight: float = 0.0
    # Content loss: L1 between VGG16 features of output and truth (needs torchvision's VGG16 file).
    content_weight: float = 0.0
    # Line loss: L1 between the Line Detection Model's lines of output and truth (needs ldm.pt).
    line_weight: float = 0.0
    # What the generator reproduces: "color", or "line" (training the Line Detection Model itself).
    target: str = "color"
    batch_size: int = 64
    size: int = 256
    label_flip: float = 0.0
    # WGAN critics: clip every D weight to [-c, c] after each D step (0: off).
    clip_weights: float = 0.0
    # Hint schemes the published system trained with (make the shards with them: `pipe shard --hints`).
    hints: tuple[str, ...] = ()

    @property
    def in_channels(self) -> int:
        return input_channels(self.inputs)

    @property
    def takes_hints(self) -> bool:
        """Whether the generator reads a hint input (`hint`, `hint_rgb`)."""
        return any(name.startswith("hint") for name in self.inputs)


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    stages: dict[str, StageRecipe]


def scaled(channels: tuple[int, ...], width: float) -> tuple[int, ...]:
    """Channel widths times `width` (1 is the published network; tests and quick trials use less)."""
    return tuple(max(4, round(c * width)) for c in channels)


def _xu2020_generator(in_channels: int, size: int, width: float) -> nn.Module:
    # Six stride-2 levels 64-128-256-512-512-512; resize + conv decoder (no checkerboard); dropout as noise.
    channels = scaled((64, 128, 256, 512, 512, 512), width)
    return UNetGenerator(UNetConfig(in_channels=in_channels, channels=channels, upsample="nearest"))


def _xu2020_refiner(in_channels: int, size: int, width: float) -> nn.Module:
    channels = scaled((64, 128, 256, 512, 512, 512), width)
    config = UNetConfig(in_channels=in_channels, channels=channels, upsample="nearest")
    return DraftEncodedUNet(config, feature_channels=scaled((256,), width)[0])


def _patchgan(in_channels: int, width: float) -> nn.Module:
    return PatchGANDiscriminator(PatchGANConfig(in_channels=in_channels, base_channels=scaled((64,), width)[0]))


def _cheng_generator(in_channels: int, size: int, width: float) -> nn.Module:
    # pix2pix's unet_256 at 256x256 (8 levels); one level fewer per halving of smaller images.
    levels = max(2, min(8, size.bit_length() - 1))
    channels = scaled((64, 128, 256, 512, 512, 512, 512, 512)[:levels], width)
    return UNetGenerator(UNetConfig(in_channels=in_channels, channels=channels))


def _chen_generator(in_channels: int, size: int, width: float) -> nn.Module:
    levels = max(2, min(5, size.bit_length() - 2))
    return AttentionUNet(AttentionUNetConfig(in_channels=in_channels, channels=scaled((64, 128, 256, 512, 512)[:levels], width)))


def _lee_generator(in_channels: int, size: int, width: float) -> nn.Module:
    levels = max(2, min(4 if size <= 128 else 5, size.bit_length() - 3))
    return ResNeXtUNet(ResNeXtUNetConfig(in_channels=in_channels, channels=scaled((64, 128, 256, 512, 512)[:levels], width)))


def _dcgan(in_channels: int, width: float) -> nn.Module:
    return DCGANDiscriminator(DCGANConfig(in_channels=in_channels, channels=scaled((64, 128, 256, 512), width)))


class LdmAsGenerator(nn.Module):
    """The Line Detection Model in the trainer's convention: RGB in [-1, 1] -> lines in [-1, 1]."""

    def __init__(self, ldm: LineDetectionModel) -> None:
        super().__init__()
        self.ldm = ldm

    def forward(self, x):
        return self.ldm((x + 1) / 2) * 2 - 1


def _ldm_generator(in_channels: int, size: int, width: float) -> nn.Module:
    return LdmAsGenerator(LineDetectionModel(LdmConfig(size=size, base_channels=scaled((32,), width)[0])))


def _cheng_discriminator(in_channels: int, width: float) -> nn.Module:
    return StridedDiscriminator(StridedConfig(in_channels=in_channels, channels=scaled((64, 128, 256, 512), width)))


RECIPES: dict[str, Recipe] = {
    "xu2020": Recipe(
        "xu2020",
        "DUT thesis: U-Net cGAN (resize+conv decoder), 70x70 PatchGAN, cGAN + 100 L1; refinement from sketch + patches hints + the draft through a colour-feature encoder, 0.01 GAN + L1",
        {
            "draft": StageRecipe(inputs=("line",), make_generator=_xu2020_generator, make_discriminator=_patchgan, hints=("patches",)),
            # Sketch (grey) + patches hints, and the erroneous draft through the colour-feature encoder.
            "refine": StageRecipe(
                inputs=("line", "hint", "draft"), make_generator=_xu2020_refiner, make_discriminator=_patchgan,
                gan_weight=0.01, recon_weight=1.0, hints=("patches",),
            ),
        },
    ),
    "cheng2018": Recipe(
        "cheng2018",
        "two-stage cGAN: U-Net 4->3 from sketch + blur hint, then 7->3 adding the draft; strided D; 0.01 GAN + L1; 7.5% label flips (the document used 5% and 10%)",
        {
            "draft": StageRecipe(
                inputs=("line", "hint_rgb"), make_generator=_cheng_generator, make_discriminator=_cheng_discriminator,
                gan_weight=0.01, recon_weight=1.0, label_flip=0.075, batch_size=16, hints=("blur",),
            ),
            "refine": StageRecipe(
                inputs=("line", "hint_rgb", "draft"), make_generator=_cheng_generator, make_discriminator=_cheng_discriminator,
                gan_weight=0.01, recon_weight=1.0, label_flip=0.075, batch_size=16, hints=("blur",),
            ),
        },
    ),
    "chen2019": Recipe(
        "chen2019",
        "reference colorization: residual U-Net with attention-gated skips and two guide decoders, from sketch + 12-channel palette; 70x70 PatchGAN with a pool of 50; lambda 100",
        {"draft": StageRecipe(
            inputs=("line3", "palette"), make_generator=_chen_generator, make_discriminator=_patchgan,
            recon_weight=100.0, guide_weight=100.0, image_pool=50, batch_size=4, hints=("palette",),
        )},
    ),
    "lee2020": Recipe(
        "lee2020",
        "two-stage generator: ResNeXt U-Net draft at 128 (pixel shuffle, no norm) with DCGAN D, 0.05 GAN + L1 + 0.1 VGG content + line loss through the LDM; 512 px refinement from line + upscaled draft, L1 only; the LDM itself",
        {
            "draft": StageRecipe(
                inputs=("line", "hint"), make_generator=_lee_generator, make_discriminator=_dcgan, gan_weight=0.05,
                recon_weight=1.0, content_weight=0.1, line_weight=1.0, lr=1e-4, betas=(0.5, 0.9), batch_size=16, size=128,
                hints=("points",),
            ),
            "refine": StageRecipe(
                inputs=("line", "draft"), make_generator=_lee_generator, recon_weight=1.0, lr=1e-4, betas=(0.5, 0.9),
                batch_size=4, size=512, hints=("points",),
            ),
            "ldm": StageRecipe(
                inputs=("color",), make_generator=_ldm_generator, target="line", recon_weight=1.0, lr=1e-4, betas=(0.5, 0.9),
                batch_size=16, size=128,
            ),
        },
    ),
    "fu2018": Recipe(
        "fu2018",
        "CS229 (Fu et al.): U-Net from sketch + blur/histogram hint; GAN with Gaussian noise on D's inputs + 100 L1",
        {"draft": StageRecipe(
            inputs=("line", "hint_rgb"), make_generator=_cheng_generator, make_discriminator=_patchgan,
            d_input_noise=0.1, batch_size=16, hints=("blur", "histogram"),
        )},
    ),
    "fu2018-cnn": Recipe(
        "fu2018-cnn",
        "CS229 baseline: the same U-Net trained with L2 loss alone (no discriminator)",
        {"draft": StageRecipe(
            inputs=("line", "hint_rgb"), make_generator=_cheng_generator, recon_loss="l2", recon_weight=1.0,
            batch_size=16, hints=("blur", "histogram"),
        )},
    ),
    "fu2018-wgan": Recipe(
        "fu2018-wgan",
        "CS229 WGAN: Wasserstein critic with weights clipped to [-0.01, 0.01], RMSprop 5e-5, 5 critic steps per G step, + 100 L1",
        {"draft": StageRecipe(
            inputs=("line", "hint_rgb"), make_generator=_cheng_generator, make_discriminator=_patchgan,
            gan_loss="wgan", clip_weights=0.01, optimizer="rmsprop", lr=5e-5, generator_every=5, batch_size=16,
            hints=("blur", "histogram"),
        )},
    ),
}


def stage_recipe(recipe: str, stage: str) -> StageRecipe:
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; available: {', '.join(RECIPES)}")
    stages = RECIPES[recipe].stages
    if stage not in stages:
        raise ValueError(f"recipe {recipe} has no {stage} stage (it has: {', '.join(stages)})")
    return stages[stage]
