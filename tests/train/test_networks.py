"""The shared networks: pix2pix-equivalent sizes, the 70x70 receptive field, shapes, bad input; checkpoints."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint, save_checkpoint
from train.networks.patchgan import PatchGANConfig, PatchGANDiscriminator, receptive_field
from train.networks.unet import UNetConfig, UNetGenerator


def parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_default_unet_and_patchgan_have_pix2pix_sizes():
    # pix2pix (unet_256, basic D, batch norm, RGB -> RGB) reports 54.414 M and 2.769 M parameters.
    generator, discriminator = UNetGenerator(), PatchGANDiscriminator()
    assert round(parameters(generator) / 1e6, 3) == 54.414
    assert parameters(discriminator) == 2_768_705
    first = generator.down[0][0]
    assert first.weight.shape == (64, 3, 4, 4) and first.bias is None  # 3,072 parameters, as published


def test_patchgan_logits_each_see_a_70_pixel_window():
    assert receptive_field(3) == 70
    discriminator = PatchGANDiscriminator(PatchGANConfig(in_channels=1, norm="none"))
    image = torch.zeros((1, 1, 128, 128), requires_grad=True)
    logits = discriminator(image)
    logits[0, 0, logits.shape[2] // 2, logits.shape[3] // 2].backward()
    rows = torch.nonzero(image.grad[0, 0].abs().sum(dim=1)).flatten()
    cols = torch.nonzero(image.grad[0, 0].abs().sum(dim=0)).flatten()
    assert rows.max() - rows.min() + 1 <= 70 and cols.max() - cols.min() + 1 <= 70
    assert rows.max() - rows.min() + 1 >= 66  # the outermost taps may have zero weight by chance, not many


@pytest.mark.parametrize("upsample", ["transposed", "nearest", "bilinear"])
def test_unet_variants_map_their_inputs_to_images_in_minus_1_1(upsample):
    config = UNetConfig(in_channels=4, out_channels=3, channels=(64, 128, 256, 512, 512, 512), upsample=upsample)
    generator = UNetGenerator(config).eval()
    out = generator(torch.randn(2, 4, 64, 64))
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    dropouts = [m for m in generator.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(dropouts) == 3
    with pytest.raises(ValueError, match="multiples of 64"):
        generator(torch.randn(1, 4, 48, 48))
    with pytest.raises(ValueError, match="unknown upsampling"):
        UNetGenerator(UNetConfig(upsample="pixelshuffle"))


def test_checkpoints_restore_models_optimizers_and_random_state(tmp_path):
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, step=7, modules={"model": model, "optimizer": optimizer}, extras={"config": {"lr": 1e-3}})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    fresh = torch.nn.Linear(4, 2)
    fresh_optimizer = torch.optim.Adam(fresh.parameters(), lr=1e-3)
    info = load_checkpoint(path, {"model": fresh, "optimizer": fresh_optimizer})
    assert info == {"step": 7, "extras": {"config": {"lr": 1e-3}}}
    assert torch.equal(fresh.weight, model.weight)
    assert fresh_optimizer.state_dict()["state"][0]["step"] == 1
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="no state for ema"):
        load_checkpoint(path, {"model": fresh, "ema": fresh})
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt", {})


def test_vgg16_features_load_a_torchvision_layout_state_dict(tmp_path):
    from extractors.weights import WeightsMissing
    from train.networks.vgg import VGG16Features, content_loss, vgg16_features

    full = vgg16_features()
    assert parameters(full) == 14_714_688  # VGG16's 13 convolutions
    state = {f"features.{k}": v for k, v in full.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # present in torchvision's file, ignored
    path = tmp_path / "vgg16-397923af.pth"
    torch.save(state, path)
    features = VGG16Features().load_torchvision(path)
    assert torch.equal(features.features[0].weight, full[0].weight)
    images = torch.rand(2, 3, 32, 32)
    outs = features(images)
    assert [o.shape[1:] for o in outs] == [(128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert content_loss(features, images, images).item() == 0
    assert content_loss(features, images, images.flip(-1)).item() > 0
    assert not any(p.requires_grad for p in features.parameters()) and not features.train().training
    with pytest.raises(WeightsMissing, match="VGG16_Weights.IMAGENET1K_V1"):
        VGG16Features().load_torchvision(tmp_path / "missing.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match="not torchvision's VGG16"):
        VGG16Features().load_torchvision(tmp_path / "wrong.pth")
