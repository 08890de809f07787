"""Test helpers for comparing pipe's FID with the reference packages (pytorch-fid, torch-fidelity,
clean-fid) on one stand-in weights file, without any download.

- `calibrated_state_dict`: random weights in pytorch-fid's file layout whose batch-norm running
  statistics are measured on real-looking images (a forward pass in train mode with cumulative
  averaging), so every layer's activations, and the pool3 features, spread as a trained network's do.
- `reference`: imports a reference package, or skips the test when it is not installed.
- `pytorch_fid_cache`: puts the file where pytorch-fid's torch.hub loader looks, so it never downloads.
- `clean_fid_extractor`: clean-fid's own wrapper (InceptionV3W: its (x - 128) / 128 and feature
  reshaping) around a TorchScript network traced from the same weights. clean-fid's published network
  is NVIDIA's TorchScript file, which cannot be built from a state dict; this file has the same
  interface (`layers` taking the normalized 299 x 299 input), so everything else that clean-fid
  does (file listing, PIL decoding, its bicubic resize, batching, its Frechet distance) is its own.
"""

from __future__ import annotations

import functools
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.stand_ins.inception import stand_in_state_dict
from train.metrics.fid_preprocess import fid_input
from train.networks.inception import FIDInception

PYTORCH_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
CLEAN_FID_FILE = "inception-2015-12-05.pt"


def sample_images(seed: int, count: int, size: int, variant: int = 0) -> np.ndarray:
    """(count, size, size, 3) uint8 flat-coloured illustrations; variant 1 is a blurred, warmer set
    (another distribution, for a FID well above 0)."""
    import cv2

    from pipeline.demo.illustrations import make_illustration

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        image = make_illustration(rng, size, size)
        if variant:
            image = cv2.GaussianBlur(image, (0, 0), 1.5 + rng.random() * 2)
            image = np.clip(image.astype(np.int16) + np.array([25, 0, -20]), 0, 255).astype(np.uint8)
        images.append(image)
    return np.stack(images)


@functools.lru_cache(maxsize=2)
def calibrated_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in the published layout, batch-norm statistics measured on 6 images."""
    model = FIDInception()
    model.load_state_dict({**model.state_dict(), **stand_in_state_dict(seed)})
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: after one batch, exactly its statistics
    images = torch.from_numpy(np.concatenate([sample_images(seed + 100, 3, 299), sample_images(seed + 101, 3, 299, variant=1)])).permute(0, 3, 1, 2)
    with torch.no_grad():
        model.train().pool_features(fid_input(images, "tf"))
    return {key: value.clone() for key, value in model.state_dict().items() if not key.endswith("num_batches_tracked")}


def write_weights(folder: Path, name: str = PYTORCH_FID_FILE, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(calibrated_state_dict(seed), folder / name)
    return folder / name


_torchvision_ops = None


def _import_torchvision() -> None:
    """torchvision, also where its compiled operators do not load (a CUDA wheel beside a CPU-only torch,
    as on machines that only reach PyPI): it then fails on registering fake kernels for operators
    that were never defined. Defining their schemas first lets the Python side import; the reference
    packages only use its model definitions and transforms, which need no compiled operator."""
    global _torchvision_ops
    try:
        importlib.import_module("torchvision")
        return
    except ModuleNotFoundError:
        pytest.skip("torchvision is not installed (the FID reference packages need it)")
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        del sys.modules[name]
    if _torchvision_ops is None:
        _torchvision_ops = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            _torchvision_ops.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    importlib.import_module("torchvision")


def reference(name: str):
    """Import reference package `name` (pytorch_fid, torch_fidelity, cleanfid) or skip."""
    if importlib.util.find_spec(name.split(".")[0]) is None:
        pytest.skip(f"{name.split('.')[0]} is not installed (pip install pytorch-fid torch-fidelity clean-fid)")
    _import_torchvision()
    return importlib.import_module(name)


def no_downloads(monkeypatch) -> None:
    """Any download attempt by torch.hub or urllib fails the test at once."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError(f"a reference package tried to download: {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def pytorch_fid_cache(monkeypatch, home: Path, seed: int = 0) -> Path:
    """TORCH_HOME/hub/checkpoints/pt_inception-2015-12-05-6726825d.pth, where pytorch-fid's
    fid_inception_v3 (torch.hub's load_state_dict_from_url) finds it without downloading."""
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    no_downloads(monkeypatch)
    return write_weights(home / "hub" / "checkpoints", PYTORCH_FID_FILE, seed)


class _CleanFidLayers(torch.nn.Module):
    """What clean-fid calls as `base.layers`: normalized (B, 3, 299, 299) -> (B, 2048, 1, 1)."""

    def __init__(self, network: FIDInception) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.pool_features(x)[:, :, None, None]


class _CleanFidBase(torch.nn.Module):
    def __init__(self, layers: torch.nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers((x - 128) / 128).flatten(1)


def clean_fid_extractor(folder: Path, seed: int = 0):
    """clean-fid's InceptionV3W loading FOLDER/inception-2015-12-05.pt built from the stand-in weights."""
    inception_torchscript = reference("cleanfid.inception_torchscript")
    network = FIDInception()
    network.load_state_dict({**network.state_dict(), **calibrated_state_dict(seed)})
    network.eval().requires_grad_(False)
    traced = torch.jit.trace(_CleanFidLayers(network), torch.zeros(1, 3, 299, 299), check_trace=False)
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(_CleanFidBase(traced)), str(folder / CLEAN_FID_FILE))
    return inception_torchscript.InceptionV3W(str(folder), download=False, resize_inside=False).eval()
