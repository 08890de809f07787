"""Recipes: each seed system's training setup as a named configuration of the shared building blocks.

A recipe gives, per stage (`draft`, `refine`, `ldm`), what the generator sees, how the generator and
the discriminator are built (and what the discriminator is conditioned on), the losses and their
weights, the optimizer, its published schedule (steps or epochs, LR milestones), the resolution and
crop, and for every one of those values where it comes from (`sources`: the document and section,
or "assumption: why"). `train.settings` resolves a stage with a preset and the user's options into
the configuration a run records; the training loop (train.trainer) is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from train.inputs import input_channels
from extractors.ldm import LdmConfig, LineDetectionModel
from train.networks.attention_unet import AttentionUNet, AttentionUNetConfig
from train.networks.dcgan import DCGANConfig, DCGANDiscriminator
from train.networks.residual_cnn import ResidualCNN, ResidualCNNConfig
from train.networks.resnext_unet import ResNeXtUNet, ResNeXtUNetConfig
from train.networks.patchgan import PatchGANConfig, PatchGANDiscriminator, StridedConfig, StridedDiscriminator
from train.networks.unet import DraftEncodedUNet, RonnebergerConfig, RonnebergerUNet, UNetConfig, UNetGenerator

STAGES = ("draft", "refine", "ldm")

# The five source documents, as `sources` name them.
XU = "Xu 2020"
CHEN = "Chen et al. 2019"
LEE = "Lee & Lee 2020"
FU = "Fu et al. 2018"
CHENG = "Cheng 2018"
DOCUMENTS = {
    XU: "Xu Shizhuo, Image Colorization Based on Generative Adversarial Network, DUT thesis, 2020",
    CHEN: "Chen et al., Automatic Colorization of Anime Sketch Image with Enhanced Residual U-net and Auxiliary Classifier GAN, 2019",
    LEE: "Lee & Lee, two-stage generator with a Line Detection Model, 2020",
    FU: "Fu, Wang & Liu, CS229 report: Automatic Colorization for Line Arts, 2018",
    CHENG: "Cheng, 2-Stage Conditional GAN for Sketch Auto-Coloring, Stanford, 2018",
}


@dataclass(frozen=True)
class StageRecipe:
    inputs: tuple[str, ...]
    # (input channels, image size, width multiplier) -> generator with 3 outputs in [-1, 1].
    make_generator: Callable[[int, int, float], nn.Module]
    # (condition + image channels, width multiplier) -> logit map; None trains G alone (no GAN).
    make_discriminator: Callable[[int, float], nn.Module] | None = None
    # Which generator inputs D sees beside the image: None all of them (pix2pix's conditional D),
    # () none (D judges the image alone), or a subset (Chen: the sketch; Cheng: the colour hint).
    d_condition: tuple[str, ...] | None = None
    gan_loss: str = "vanilla"
    gan_weight: float = 1.0
    # Reconstruction loss to the truth: "l1" or "l2", and its weight.
    recon_loss: str = "l1"
    recon_weight: float = 100.0
    optimizer: str = "adam"  # or "rmsprop" (WGAN)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    # The published schedule: a length in steps or in epochs (passes over the train split), and the
    # LR schedule (`train.schedule`): "constant" or "step" decay by `lr_gamma` after each milestone.
    steps: int | None = 10_000
    epochs: int | None = None
    lr_schedule: str = "constant"
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    warmup_steps: int = 0
    # Augmentation: a random crop of this side (at shard resolution) and left-right flips.
    crop: int | None = None
    flip: bool = False
    # Standard deviation of Gaussian noise added to D's inputs (real and generated), in [-1, 1] units.
    d_input_noise: float = 0.0
    # D steps per G step (WGAN's n_critic); each step still takes a fresh batch.
    generator_every: int = 1
    # D sees generated pairs through a pool of this many past ones (0: off; pix2pix/CycleGAN use 50).
    image_pool: int = 0
    # Weight of the L1 loss of each guide decoder's image (generators that return GuidedOutput).
    guide_weight: float = 0.0
    # Content loss: a distance ("l1" or "mse") between VGG16 features of output and truth, at these
    # layers (needs torchvision's VGG16 file).
    content_weight: float = 0.0
    content_layers: tuple[str, ...] = ("relu2_2", "relu3_3", "relu4_3")
    content_distance: str = "l1"
    # Line loss: L1 between the Line Detection Model's lines of output and truth (needs ldm.pt).
    line_weight: float = 0.0
    # What the generator reproduces: "color", or "line" (training the Line Detection Model itself).
    target: str = "color"
    batch_size: int = 64
    size: int = 256
    label_flip: float = 0.0
    # Label-flip rates the document itself used (offered as alternatives to `label_flip`).
    label_flip_choices: tuple[float, ...] = ()
    # WGAN critics: clip every D weight to [-c, c] after each D step (0: off).
    clip_weights: float = 0.0
    # The generator keeps its dropout on at inference (its factory builds it so; recorded here).
    inference_dropout: bool = False
    # xu2020 refine: the ImageNet GoogLeNet encoder (--feature-encoder) is fine-tuned, not frozen.
    fine_tune_encoder: bool = False
    # Hint schemes the published system trained with (make the shards with them: `pipe shard --hints`).
    hints: tuple[str, ...] = ()
    # The document this stage reproduces, short descriptions of its networks, and where every
    # value comes from (keys as `pipe train --show-config` prints them).
    document: str = ""
    generator: str = ""
    discriminator: str = ""
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    # Bumped when the stage's networks change: checkpoints of an older revision cannot resume; those
    # of an older generator revision cannot colour either (a change of D alone leaves them usable).
    revision: int = 1
    generator_revision: int = 1
    revision_note: str = ""

    @property
    def in_channels(self) -> int:
        return input_channels(self.inputs)

    @property
    def d_in_channels(self) -> int:
        """Channels of what D sees: its condition and the image (or lines) judged."""
        condition = self.inputs if self.d_condition is None else self.d_condition
        return (input_channels(condition) if condition else 0) + (1 if self.target == "line" else 3)

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


def _xu2020_unet(in_channels: int, width: float) -> UNetConfig:
    # Six stride-2 levels 64-128-256-512-512-512; resize + conv decoder (no checkerboard); dropout at
    # the start of the three innermost decoder blocks (CD512, CD1024, CD1024), kept on at inference.
    channels = scaled((64, 128, 256, 512, 512, 512), width)
    return UNetConfig(in_channels=in_channels, channels=channels, upsample="nearest", dropout_start=0, dropout_at_inference=True)


def _xu2020_generator(in_channels: int, size: int, width: float) -> nn.Module:
    return UNetGenerator(_xu2020_unet(in_channels, width))


def _xu2020_refiner(in_channels: int, size: int, width: float) -> nn.Module:
    return DraftEncodedUNet(_xu2020_unet(in_channels, width), feature_channels=scaled((256,), width)[0])


def _patchgan(in_channels: int, width: float) -> nn.Module:
    return PatchGANDiscriminator(PatchGANConfig(in_channels=in_channels, base_channels=scaled((64,), width)[0]))


def _pix2pix_generator(in_channels: int, size: int, width: float) -> nn.Module:
    # pix2pix's unet_256 at 256x256 (8 levels); one level fewer per halving of smaller images.
    levels = max(2, min(8, size.bit_length() - 1))
    channels = scaled((64, 128, 256, 512, 512, 512, 512, 512)[:levels], width)
    return UNetGenerator(UNetConfig(in_channels=in_channels, channels=channels))


def _cheng_generator(in_channels: int, size: int, width: float) -> nn.Module:
    # Ronneberger's five levels 64-1024 (four poolings); fewer for images under 64 px.
    levels = max(2, min(5, size.bit_length() - 3))
    return RonnebergerUNet(RonnebergerConfig(in_channels=in_channels, channels=scaled((64, 128, 256, 512, 1024)[:levels], width)))


def _fu_cnn(in_channels: int, size: int, width: float) -> nn.Module:
    return ResidualCNN(ResidualCNNConfig(in_channels=in_channels, channels=scaled((64, 128, 256), width)))


def _chen_generator(in_channels: int, size: int, width: float) -> nn.Module:
    levels = max(2, min(5, size.bit_length() - 2))
    config = AttentionUNetConfig(in_channels=in_channels, channels=scaled((64, 128, 256, 512, 512)[:levels], width), downsample="maxpool")
    return AttentionUNet(config)


def _lee_levels(size: int) -> int:
    return max(2, min(4 if size <= 128 else 5, size.bit_length() - 3))


def _lee_draft_generator(in_channels: int, size: int, width: float) -> nn.Module:
    # "10 layers per block in ResNeXt block": ten ResNeXt blocks per encoder level and at the bottleneck.
    channels = scaled((64, 128, 256, 512, 512)[: _lee_levels(size)], width)
    return ResNeXtUNet(ResNeXtUNetConfig(in_channels=in_channels, channels=channels, blocks=10))


def _lee_generator(in_channels: int, size: int, width: float) -> nn.Module:
    return ResNeXtUNet(ResNeXtUNetConfig(in_channels=in_channels, channels=scaled((64, 128, 256, 512, 512)[: _lee_levels(size)], width)))


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


def _silent(document: str, what: str) -> str:
    return f"assumption: {document} gives no {what}; pipe's value"


def _pix2pix_optimizer(document: str) -> dict[str, str]:
    """Sources of an optimizer the document does not describe (pix2pix's Adam 2e-4, betas 0.5/0.999)."""
    return {
        "optimizer": f"assumption: {document} names no optimizer; pix2pix's Adam",
        "lr": f"assumption: {document} gives no learning rate; pix2pix's 2e-4",
        "betas": f"assumption: {document} gives no Adam betas; pix2pix's (0.5, 0.999)",
    }


def _no_schedule(document: str) -> dict[str, str]:
    return {
        "lr_schedule": f"assumption: {document} mentions no learning-rate decay; constant",
        "lr_milestones": f"assumption: {document} mentions no learning-rate decay",
        "lr_gamma": "assumption: unused by a constant schedule",
        "warmup_steps": f"assumption: {document} mentions no warm-up",
    }


LEE_CROP = (f"{LEE}, sec. 3.2 (a 512x512 crop at a random position of each original; the originals are at least "
            f"512 px, sec. 4.1); pipe's shards are 512x512 already, so the crop is the whole shard image unless the shards are larger")
LEE_STEP = f"{LEE}, sec. 4.2 (the rate divided by 10 at the milestones)"

RECIPES: dict[str, Recipe] = {
    "xu2020": Recipe(
        "xu2020",
        "DUT thesis: U-Net cGAN (resize+conv decoder, dropout noise kept at inference), 70x70 PatchGAN, cGAN + 100 L1; refinement from sketch + patches hints + the draft through a colour-feature encoder, 0.01 GAN + L1, D on the image alone",
        {
            "draft": StageRecipe(
                inputs=("line",), make_generator=_xu2020_generator, make_discriminator=_patchgan, hints=("patches",), inference_dropout=True,
                document=XU, generator="U-Net 64-128-256-512-512-512, stride-2 convs, resize+conv decoder, dropout on CD512-CD1024-CD1024 kept at inference",
                discriminator="70x70 PatchGAN on (sketch, image)",
                sources={
                    "inputs": f"{XU}, sec. 4.2.1 (the sketch is the generator's input; the noise z is its dropout)",
                    "size": f"assumption: {XU} fixes its images at 512x512 (sec. 4.4) but states no training resolution; pix2pix's 256",
                    "crop": f"assumption: {XU} scales its images to 512x512 (sec. 4.4) and mentions no cropping",
                    "batch_size": _silent(XU, "batch size"),
                    **_pix2pix_optimizer(XU), **_no_schedule(XU),
                    "steps": _silent(XU, "training length"),
                    "loss_weights": f"{XU}, eq. 4.4 (cGAN + lambda L1); assumption: lambda's value is not given, pix2pix's 100",
                    "gan_loss": f"{XU}, eq. 4.1 (log D)",
                    "critic_steps": f"{XU}, sec. 3.1.2 (D and G trained in alternation)",
                    "d_condition": f"{XU}, eq. 4.1 (D(x, y): the sketch and the image)",
                    "generator": f"{XU}, sec. 4.2.2 (encoder conv64-...-conv512, stride-2 convs with LeakyReLU 0.2, upsampling+conv decoder with ReLU, dropout at the start of CD512, CD1024, CD1024 as G's noise input z, kept at inference)",
                    "discriminator": f"{XU}, sec. 4.2.2 (PatchGAN); assumption: the 70x70 patch is pix2pix's (Figure 4.6 is not in the text)",
                    "inference_dropout": f"{XU}, sec. 4.2.2 (dropout is the random noise input of G(x, z), eq. 4.1)",
                    "hints": f"{XU}, sec. 4.3.1 (patches, used by the refinement; the draft takes none)",
                },
            ),
            # Sketch (grey) + patches hints, and the erroneous draft through the colour-feature encoder.
            "refine": StageRecipe(
                inputs=("line", "hint", "draft"), make_generator=_xu2020_refiner, make_discriminator=_patchgan, d_condition=(),
                gan_weight=0.01, recon_weight=1.0, hints=("patches",), fine_tune_encoder=True, inference_dropout=True,
                document=XU, generator="the draft's U-Net over sketch + hints; the draft through a colour-feature encoder (ImageNet GoogLeNet with --feature-encoder, fine-tuned) joined at the innermost level",
                discriminator="70x70 PatchGAN on the image alone",
                revision=2, revision_note="its discriminator now judges the image alone (eq. 4.4)",
                sources={
                    "inputs": f"{XU}, sec. 4.3.2 (the sketch as a greyscale image, the user hints u_i, the synthesized draft y_m)",
                    "size": f"assumption: {XU} states no training resolution; pix2pix's 256",
                    "crop": f"assumption: {XU} scales its images to 512x512 (sec. 4.4) and mentions no cropping",
                    "batch_size": _silent(XU, "batch size"),
                    **_pix2pix_optimizer(XU), **_no_schedule(XU),
                    "steps": _silent(XU, "training length"),
                    "loss_weights": f"{XU}, eq. 4.4 and sec. 4.3.2 (lambda = 0.01 on the adversarial terms, MAE with weight 1)",
                    "gan_loss": f"{XU}, eq. 4.4 (log D)",
                    "critic_steps": f"{XU}, sec. 3.1.2 (D and G trained in alternation)",
                    "d_condition": f"{XU}, eq. 4.4 (D(y_f) and D(G(x, u_i, y_m)): the image alone)",
                    "generator": (f"{XU}, sec. 4.3.2 (U-Net; the draft's colour features from an Inception-v1 encoder with ImageNet initial weights, "
                                  "fine-tuned, join the decoder); pipe uses that encoder with --feature-encoder FILE and otherwise a trained "
                                  "convolution encoder (assumption: the weights file is optional); assumption: the U-Net is the draft's, dropout included"),
                    "discriminator": f"assumption: {XU}'s Figure 4.9 is not in the text; the draft's 70x70 PatchGAN",
                    "inference_dropout": f"assumption: {XU} describes the refinement's U-Net as the draft's (sec. 4.3.2)",
                    "hints": f"{XU}, sec. 4.3.1 (patches: geometric count p = 1/10, Gaussian positions, 4-16 px mean-colour patches)",
                },
            ),
        },
    ),
    "cheng2018": Recipe(
        "cheng2018",
        "two-stage cGAN: Ronneberger U-Net 4->3 from sketch + blur hint on random 256 crops, then 7->3 adding the draft; strided D conditioned on the hint; 0.01 GAN + L1; 10% label flips (5% offered)",
        {
            "draft": StageRecipe(
                inputs=("line", "hint_rgb"), make_generator=_cheng_generator, make_discriminator=_cheng_discriminator, d_condition=("hint_rgb",),
                gan_weight=0.01, recon_weight=1.0, label_flip=0.10, label_flip_choices=(0.05, 0.10), batch_size=16, crop=256, hints=("blur",),
                document=CHENG, generator="Ronneberger U-Net 64-128-256-512-1024: double 3x3 convs, 2x2 max-pool, 2x2 up-convolutions",
                discriminator="[conv 4x4 s2, BN, ReLU] x4 on (hint, image)",
                revision=2, generator_revision=2, revision_note="its generator is now Ronneberger's U-Net and its discriminator sees the hint, not the sketch",
                sources={
                    "inputs": f"{CHENG}, sec. 1 and 4 (a 4-to-3 mapping: the sketch and an RGB hint image)",
                    "size": f"{CHENG}, sec. 3 (256x256 training examples)",
                    "crop": f"{CHENG}, sec. 3 (a randomly cropped 256x256 region of each Danbooru 2017 512px image)",
                    "batch_size": _silent(CHENG, "batch size"),
                    **_pix2pix_optimizer(CHENG), **_no_schedule(CHENG),
                    "steps": _silent(CHENG, "training length"),
                    "loss_weights": f"{CHENG}, sec. 4 (lambda = 0.01 on the adversarial term, L1 with weight 1)",
                    "gan_loss": f"{CHENG}, sec. 4 (log D)",
                    "critic_steps": _silent(CHENG, "D/G step ratio") + " (one each)",
                    "label_flip": f"{CHENG}, sec. 5 (5% and 10% both used with success; 10%, the rate of its worked example, by default; --label-flip 0.05 for the other)",
                    "d_condition": f"{CHENG}, sec. 4 (D(y|x) with x the colour hint, z the sketch)",
                    "generator": (f"{CHENG}, sec. 4-5 (Ronneberger et al.'s U-Net, adopted after Zhang & Li's transposed convolutions gave checkerboards and "
                                  "upsample+conv gave colour leaks); assumption: Ronneberger's layout (double 3x3 conv, 2x2 max-pool, 2x2 up-convolution), "
                                  "padded so the output keeps the input's size, tanh output"),
                    "discriminator": f"{CHENG}, sec. 4 ([conv, batchnorm, relu] blocks with a stride of 2); assumption: four blocks 64-512",
                    "hints": f"{CHENG}, sec. 3 (30 random 45x45 patches whitened out and blurred with a 115x115 Gaussian)",
                },
            ),
            "refine": StageRecipe(
                inputs=("line", "hint_rgb", "draft"), make_generator=_cheng_generator, make_discriminator=_cheng_discriminator,
                d_condition=("hint_rgb", "draft"), gan_weight=0.01, recon_weight=1.0, label_flip=0.10, label_flip_choices=(0.05, 0.10),
                batch_size=16, crop=256, hints=("blur",),
                document=CHENG, generator="Ronneberger U-Net, 7 input channels", discriminator="[conv 4x4 s2, BN, ReLU] x4 on (hint, draft, image)",
                revision=2, generator_revision=2, revision_note="its generator is now Ronneberger's U-Net and its discriminator sees the hint and draft, not the sketch",
                sources={
                    "inputs": f"{CHENG}, sec. 4 (stage 2 maps 7 to 3 channels: sketch, hint and the draft of a half-trained draft generator, sec. 3)",
                    "size": f"{CHENG}, sec. 3 (256x256 image bundles of original, sketch, draft and hint)",
                    "crop": f"{CHENG}, sec. 3 (256x256 crops of the 512px images)",
                    "batch_size": _silent(CHENG, "batch size"),
                    **_pix2pix_optimizer(CHENG), **_no_schedule(CHENG),
                    "steps": _silent(CHENG, "training length"),
                    "loss_weights": f"{CHENG}, sec. 4 (the same GAN as the draft: lambda = 0.01, L1 weight 1)",
                    "gan_loss": f"{CHENG}, sec. 4 (log D)",
                    "critic_steps": _silent(CHENG, "D/G step ratio") + " (one each)",
                    "label_flip": f"{CHENG}, sec. 5 (5% and 10%; 10% by default, --label-flip 0.05 for the other)",
                    "d_condition": f"assumption: {CHENG} conditions D on the colour hint (sec. 4); in stage 2 the draft joins the hint as D's condition",
                    "generator": f"{CHENG}, sec. 4 (the same U-Net as the draft, 7 input channels)",
                    "discriminator": f"{CHENG}, sec. 4 ([conv, batchnorm, relu] blocks with a stride of 2); assumption: four blocks 64-512",
                    "hints": f"{CHENG}, sec. 3 (blurred patches)",
                },
            ),
        },
    ),
    "chen2019": Recipe(
        "chen2019",
        "reference colorization: residual U-Net with pooling, attention-gated skips and two guide decoders, from sketch + 12-channel palette at 512 px; 70x70 PatchGAN on (sketch, image) with a pool of 50; lambda 100; 15 epochs",
        {"draft": StageRecipe(
            inputs=("line3", "palette"), make_generator=_chen_generator, make_discriminator=_patchgan, d_condition=("line3",),
            recon_weight=100.0, guide_weight=100.0, image_pool=50, batch_size=4, size=512, steps=None, epochs=15, hints=("palette",),
            document=CHEN, generator="residual U-Net with 2x2 max-pooling down and nearest un-pooling up, attention gates on the skips, two guide decoders",
            discriminator="70x70 PatchGAN on (sketch, image) through an image pool of 50",
            revision=2, generator_revision=2, revision_note="its generator now pools (max-pooling) and its discriminator sees the sketch alone, not the palette",
            sources={
                "inputs": f"{CHEN}, sec. 1 and 2.1 (512x512x15: the sketch as RGB and the four palette images)",
                "size": f"{CHEN}, sec. 1 and 3 (512x512 images, input 512x512x15)",
                "crop": f"{CHEN}, sec. 1 and 3 (the 512x512 images are the input as they are: no crop)",
                "batch_size": f"{CHEN}, sec. 5, Table 1",
                "optimizer": f"{CHEN}, sec. 5, Table 1 (beta1 implies Adam)",
                "lr": f"{CHEN}, sec. 5, Table 1",
                "betas": f"{CHEN}, sec. 5, Table 1 (beta1 0.5); assumption: beta2 is not given, Adam's default 0.999",
                **{k: v for k, v in _no_schedule(CHEN).items()},
                "epochs": f"{CHEN}, sec. 5, Table 1",
                "loss_weights": f"{CHEN}, sec. 1 and Table 1 (GAN + lambda L1, lambda = 100); assumption: the guide decoders' L1 weight (sec. 2.3) is not given, lambda too",
                "gan_loss": f"{CHEN}, sec. 1 (log D)",
                "critic_steps": _silent(CHEN, "D/G step ratio") + " (one each)",
                "image_pool": f"{CHEN}, sec. 1 (the past 50 fake images)",
                "d_condition": f"{CHEN}, sec. 1 (D(x, y) and D(x, G(x, C(y))): the sketch x, not the palette C(y))",
                "generator": (f"{CHEN}, sec. 1, 2.2, 2.3 (a U-Net with pooling and un-pooling layers, residual down and up blocks, attention gates on "
                              "the skip connections, two extra decoders with their own loss); assumption: max-pooling and nearest-neighbour "
                              "un-pooling, widths 64-512 (Figures 3-4 are not in the text)"),
                "discriminator": f"{CHEN}, sec. 1 (70x70 PatchGAN)",
                "hints": f"{CHEN}, sec. 2.1 (top-4 colours of 4 regions)",
            },
        )},
    ),
    "lee2020": Recipe(
        "lee2020",
        "two-stage generator: ResNeXt U-Net draft at 128 (10 blocks per level, pixel shuffle, no norm) with an unconditional DCGAN D, 0.05 GAN + L1 + 0.1 VGG16 conv2_2 MSE + line loss through the LDM; 512 px refinement from line + upscaled draft, L1 only; the LDM itself; Adam 1e-4 (0.5, 0.9) with /10 step decay",
        {
            "draft": StageRecipe(
                inputs=("line", "hint"), make_generator=_lee_draft_generator, make_discriminator=_dcgan, d_condition=(), gan_weight=0.05,
                recon_weight=1.0, content_weight=0.1, content_layers=("relu2_2",), content_distance="mse", line_weight=1.0, lr=1e-4,
                betas=(0.5, 0.9), batch_size=64, size=128, crop=512, steps=175_000, lr_schedule="step", lr_milestones=(48_000,), hints=("points",),
                document=LEE, generator="ResNeXt U-Net, 10 ResNeXt blocks (cardinality 32) per encoder level, pixel shuffle, no normalization, LeakyReLU 0.2",
                discriminator="DCGAN-style D on the image alone",
                revision=2, generator_revision=2, revision_note="its generator now has 10 ResNeXt blocks per level and its discriminator judges the image alone",
                sources={
                    "inputs": f"{LEE}, sec. 3.2 (line art and an RGBA hint of 0-128 pixels)",
                    "size": f"{LEE}, sec. 3.2 and 3.4 (the 512 crop resized to 128x128)",
                    "crop": LEE_CROP,
                    "batch_size": f"{LEE}, sec. 4.2",
                    "optimizer": f"{LEE}, sec. 4.2", "lr": f"{LEE}, sec. 4.2", "betas": f"{LEE}, sec. 4.2",
                    "lr_schedule": LEE_STEP, "lr_milestones": f"{LEE}, sec. 4.2 (48K)", "lr_gamma": f"{LEE}, sec. 4.2 (one tenth)",
                    "warmup_steps": f"assumption: {LEE} mentions no warm-up",
                    "steps": f"{LEE}, sec. 4.2 (175K)",
                    "loss_weights": f"{LEE}, sec. 3.6 eq. 2 and sec. 4.2 (w_a 0.05, w_r 1.0, w_c 0.1, w_l 1.0)",
                    "gan_loss": f"{LEE}, sec. 3.6 eq. 3 (log D)",
                    "critic_steps": _silent(LEE, "D/G step ratio") + " (one each)",
                    "d_condition": f"{LEE}, sec. 3.6 eq. 3 (D(c) and D(G(l, h)): the image alone)",
                    "content": (f"{LEE}, sec. 3.6 eq. 5 (MSE of the feature map of VGG16's fourth convolution layer, conv2_2, ImageNet weights); "
                                "assumption: taken after that layer's ReLU (relu2_2)"),
                    "generator": (f"{LEE}, sec. 3.4 (U-Net of ResNeXt blocks, '10 layers per block' read as 10 ResNeXt blocks per encoder level, "
                                  "pixel-shuffle upsampling, no normalization, LeakyReLU 0.2, tanh); assumption: widths and the decoder's one "
                                  "block per level (Figure 7 is not in the text)"),
                    "discriminator": f"{LEE}, sec. 3.4 (Radford et al.'s DCGAN design, LeakyReLU 0.2, sigmoid); assumption: its layers (Figure 7 is not in the text)",
                    "hints": f"{LEE}, sec. 3.2 (0 to 128 random pixels)",
                },
            ),
            "refine": StageRecipe(
                inputs=("line", "draft"), make_generator=_lee_generator, recon_weight=1.0, lr=1e-4, betas=(0.5, 0.9),
                batch_size=4, size=512, crop=512, steps=1_173_000, lr_schedule="step", lr_milestones=(733_000,), hints=("points",),
                document=LEE, generator="ResNeXt U-Net at 512 px, 2 ResNeXt blocks per level", discriminator="none (no GAN)",
                sources={
                    "inputs": f"{LEE}, sec. 3.5 eq. 7 (the 512 line art and the draft enlarged from 128 to 512)",
                    "size": f"{LEE}, sec. 3.5 (512x512)",
                    "crop": LEE_CROP,
                    "batch_size": f"{LEE}, sec. 4.2 (4, the largest that fit)",
                    "optimizer": f"{LEE}, sec. 4.2 (the draft's Adam)", "lr": f"{LEE}, sec. 4.2 (the draft's)", "betas": f"{LEE}, sec. 4.2 (the draft's)",
                    "lr_schedule": LEE_STEP, "lr_milestones": f"{LEE}, sec. 4.2 (733K)", "lr_gamma": f"{LEE}, sec. 4.2 (one tenth)",
                    "warmup_steps": f"assumption: {LEE} mentions no warm-up",
                    "steps": f"{LEE}, sec. 4.2 (1173K)",
                    "loss_weights": f"{LEE}, sec. 3.5 eq. 7 (L1 only; no adversarial loss)",
                    "generator": f"{LEE}, sec. 3.5 ('also uses U-NET', tanh); assumption: the draft's ResNeXt U-Net with 2 blocks per level (Figure 7 is not in the text)",
                    "discriminator": f"{LEE}, sec. 3.5 (no GAN in the colorization stage)",
                    "hints": f"{LEE}, sec. 3.2 (the refinement reads no hints)",
                },
            ),
            "ldm": StageRecipe(
                inputs=("color",), make_generator=_ldm_generator, target="line", recon_weight=1.0, lr=1e-4, betas=(0.5, 0.9),
                batch_size=16, size=128, crop=512, steps=256_000, lr_schedule="step", lr_milestones=(110_000, 183_000),
                document=LEE, generator="the Line Detection Model (extractors/ldm.py)", discriminator="none",
                sources={
                    "inputs": f"{LEE}, sec. 3.3 (a colour image in, grey line art out)",
                    "size": f"{LEE}, sec. 3.3 (128x128)",
                    "crop": LEE_CROP,
                    "batch_size": f"{LEE}, sec. 3.3",
                    "optimizer": f"{LEE}, sec. 3.3", "lr": f"{LEE}, sec. 3.3", "betas": f"{LEE}, sec. 3.3",
                    "lr_schedule": f"{LEE}, sec. 3.3 (decreased by one tenth at the milestones)", "lr_milestones": f"{LEE}, sec. 3.3 (110K and 183K)",
                    "lr_gamma": f"{LEE}, sec. 3.3 (one tenth)", "warmup_steps": f"assumption: {LEE} mentions no warm-up",
                    "steps": f"{LEE}, sec. 3.3 (256K)",
                    "loss_weights": f"{LEE}, sec. 3.3 eq. 1 (L1 to the extracted lines)",
                    "generator": f"{LEE}, sec. 3.3 (an auto-encoder, Figure 6); assumption: its layers (extractors/ldm.py) as Figure 6 is not in the text",
                    "discriminator": f"{LEE}, sec. 3.3 (no GAN)",
                    "hints": f"{LEE}, sec. 3.3 (no hints)",
                },
            ),
        },
    ),
    "fu2018": Recipe(
        "fu2018",
        "CS229 (Fu et al.): U-Net from sketch + blur/histogram hint; GAN with Gaussian noise on D's inputs, D on the image alone, + 100 L1",
        {"draft": StageRecipe(
            inputs=("line", "hint_rgb"), make_generator=_pix2pix_generator, make_discriminator=_patchgan, d_condition=(),
            d_input_noise=0.1, batch_size=16, hints=("blur", "histogram"),
            document=FU, generator="pix2pix U-Net (unet_256)", discriminator="70x70 PatchGAN on the image alone, Gaussian noise on its inputs",
            revision=2, revision_note="its discriminator now judges the image alone (eq. 7)",
            sources={
                "inputs": f"{FU}, sec. III.A and III.D (the line art with a blurred or histogram colour hint image)",
                "size": _silent(FU, "training resolution"),
                "crop": f"assumption: {FU} mentions no cropping",
                "batch_size": _silent(FU, "batch size"),
                **_pix2pix_optimizer(FU), **_no_schedule(FU),
                "steps": _silent(FU, "training length for the GAN"),
                "loss_weights": f"{FU}, sec. III.B eq. 7 (GAN + lambda L1); assumption: lambda's value is not given, pix2pix's 100",
                "gan_loss": f"{FU}, sec. II.C eq. 3 (log D)",
                "critic_steps": f"{FU}, sec. II.C Algorithm 1 (a D update, then a G update)",
                "d_input_noise": f"{FU}, sec. II.C and IV.D (Gaussian noise added to the discriminator); assumption: sigma 0.1 on D's inputs (neither is given)",
                "d_condition": f"{FU}, sec. III.B eq. 7 (D(x) and D(G(z)): the image alone)",
                "generator": f"assumption: {FU}'s GAN structure is its Figure 3, not in the text; pix2pix's U-Net",
                "discriminator": f"assumption: {FU}'s Figure 3 is not in the text; pix2pix's 70x70 PatchGAN",
                "hints": f"{FU}, sec. III.A (blurred hints and colour-histogram hints)",
            },
        )},
    ),
    "fu2018-cnn": Recipe(
        "fu2018-cnn",
        "CS229 baseline: a small conv/deconv network with two residual layers, trained with L2 loss alone (no discriminator) for 70 epochs",
        {"draft": StageRecipe(
            inputs=("line", "hint_rgb"), make_generator=_fu_cnn, recon_loss="l2", recon_weight=1.0, batch_size=16, steps=None, epochs=70,
            hints=("blur", "histogram"),
            document=FU, generator="conv 64-128-256 + ReLU down, two residual layers, deconv up (no skips, no norm)", discriminator="none (no GAN)",
            revision=2, generator_revision=2, revision_note="its generator is now the report's small residual CNN, not the pix2pix U-Net",
            sources={
                "inputs": f"{FU}, sec. III.C (the baseline also gets the colour hint images)",
                "size": _silent(FU, "training resolution"),
                "crop": f"assumption: {FU} mentions no cropping",
                "batch_size": _silent(FU, "batch size"),
                "optimizer": f"{FU}, sec. III.C (Adam)",
                "lr": f"assumption: {FU} gives no learning rate; pipe's 2e-4 (the GAN variants')",
                "betas": f"assumption: {FU} gives no Adam betas; pipe's (0.5, 0.999) (the GAN variants')",
                **_no_schedule(FU),
                "epochs": f"{FU}, sec. III.C (70 epochs)",
                "loss_weights": f"{FU}, sec. III.B eq. 6 and III.C (L2 alone)",
                "generator": (f"{FU}, sec. III.C (convolution and ReLU layers after Frans [4], two residual connection layers between the convolution "
                              "and deconvolution layers); assumption: widths 64-128-256, 4x4 stride-2 convolutions, no skips or normalization"),
                "discriminator": f"{FU}, sec. III.C (a CNN trained with L2: no discriminator)",
                "hints": f"{FU}, sec. III.A and III.C",
            },
        )},
    ),
    "fu2018-wgan": Recipe(
        "fu2018-wgan",
        "CS229 WGAN: Wasserstein critic on the image alone with weights clipped to [-0.01, 0.01], RMSprop 5e-5, D and G trained equally often, + 100 L1",
        {"draft": StageRecipe(
            inputs=("line", "hint_rgb"), make_generator=_pix2pix_generator, make_discriminator=_patchgan, d_condition=(),
            gan_loss="wgan", clip_weights=0.01, optimizer="rmsprop", lr=5e-5, generator_every=1, batch_size=16,
            hints=("blur", "histogram"),
            document=FU, generator="pix2pix U-Net (unet_256)", discriminator="PatchGAN critic on the image alone, weights clipped to [-0.01, 0.01]",
            revision=2, revision_note="its critic now judges the image alone (eq. 7)",
            sources={
                "inputs": f"{FU}, sec. III.E (the same inputs as the GAN)",
                "size": _silent(FU, "training resolution"),
                "crop": f"assumption: {FU} mentions no cropping",
                "batch_size": _silent(FU, "batch size"),
                "optimizer": f"{FU}, sec. III.E (WGAN as proposed by Arjovsky et al. [1], whose RMSprop the report does not restate)",
                "lr": f"{FU}, sec. III.E (Arjovsky et al.'s 5e-5, via 'as proposed'; not restated in the report)",
                "betas": f"{FU}, sec. III.E (RMSprop, which has no betas)",
                **_no_schedule(FU),
                "steps": _silent(FU, "training length for the WGAN"),
                "loss_weights": f"{FU}, sec. III.B eq. 7 (+ lambda L1); assumption: lambda's value is not given, pix2pix's 100",
                "gan_loss": f"{FU}, sec. III.E (WGAN)",
                "critic_steps": f"{FU}, sec. III.E (the discriminator and generator trained equally frequently)",
                "clip_weights": f"{FU}, sec. III.E ([-0.01, 0.01] after every update)",
                "d_condition": f"{FU}, sec. III.B eq. 7 (D(x) and D(G(z)): the image alone)",
                "generator": f"assumption: {FU}'s Figure 3 is not in the text; pix2pix's U-Net",
                "discriminator": f"assumption: {FU} names no critic architecture; pix2pix's 70x70 PatchGAN without the sigmoid",
                "hints": f"{FU}, sec. III.A",
            },
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
