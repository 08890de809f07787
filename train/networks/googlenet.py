"""GoogLeNet (Inception v1) with torchvision's module layout, as a frozen colour-feature encoder.

torchvision is not usable everywhere pipe runs, so the network is defined here with the names of
`torchvision.models.googlenet()` (conv1..conv3, inception3a..inception5b, fc; BasicConv2d = conv
without bias + BatchNorm eps 1e-3 + ReLU; the "5x5" branch is a 3x3 convolution, as in torchvision),
so torchvision's published ImageNet state dict (googlenet-1378be20.pth) loads unchanged; the
auxiliary classifiers' weights in that file are ignored. `features` returns inception4e's output
(832 channels at 1/16 of the input size).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from extractors.weights import load_tensor_file, require_weights
from train.networks.vgg import IMAGENET_MEAN, IMAGENET_STD

# What the file must be (the one line a wrong file gets).
WHAT = "torchvision's GoogLeNet state dict (googlenet-1378be20.pth, see `pipe weights list`)"

FEATURE_CHANNELS = 832


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1), BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], dim=1)


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.fc = nn.Linear(1024, num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] -> inception4e's activations (B, 832, ~H/16, ~W/16)."""
        x = (images - self.mean) / self.std
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for block in (self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e):
            x = block(x)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool4(self.features(images))
        x = self.inception5b(self.inception5a(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def load_googlenet(path: Path | None = None) -> GoogLeNet:
    """torchvision's GoogLeNet ImageNet state dict from `path` or the weights folder, frozen, in eval mode."""
    file = require_weights("googlenet", path)
    state = load_tensor_file(file, WHAT)
    if not isinstance(state, dict):
        raise ValueError(f"{file} is not {WHAT}")
    model = GoogLeNet()
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    if missing:
        raise ValueError(f"{file} is not {WHAT}: it lacks {', '.join(missing[:3])}")
    model.load_state_dict({key: state[key] for key in own})
    return model.eval().requires_grad_(False)
