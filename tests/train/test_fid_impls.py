"""pipe's three FID implementations against the packages they follow, image tensor by image tensor,
on one stand-in weights file in pytorch-fid's layout (random, seeded, batch-norm statistics measured):
the `pytorch-fid` features equal pytorch-fid's network output, `tf` equals torch-fidelity's feature
extractor, `clean`'s resize equals clean-fid's. Skipped where a package is not installed; nothing is
downloaded (the packages find the file in their caches or load paths)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from tests.train.fid_references import calibrated_state_dict, pytorch_fid_cache, reference, sample_images, write_weights
from train.metrics.fid_preprocess import resize_like_pil_bicubic
from train.metrics.inception_features import InceptionFeatures
from train.networks.inception import FIDInception

SIZES = [(299, 299), (512, 512), (250, 333)]


@functools.lru_cache(maxsize=1)
def pipe_network() -> FIDInception:
    model = FIDInception()
    model.load_state_dict({**model.state_dict(), **calibrated_state_dict(0)})
    return model.eval()


def pipe_features(impl: str, images: torch.Tensor) -> np.ndarray:
    return InceptionFeatures(pipe_network(), "cpu", batch_size=8, impl=impl)(images)


@pytest.fixture(scope="module")
def pytorch_fid_network(tmp_path_factory):
    """pytorch-fid's InceptionV3 returning pool3, its weights found in the torch.hub cache."""
    inception = reference("pytorch_fid.inception")
    with pytest.MonkeyPatch.context() as monkeypatch:
        pytorch_fid_cache(monkeypatch, tmp_path_factory.mktemp("torch"))
        return inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()


@pytest.fixture(scope="module")
def torch_fidelity_extractor(tmp_path_factory):
    """torch-fidelity's InceptionV3 feature extractor, weights from its load path."""
    extractor_module = reference("torch_fidelity.feature_extractor_inceptionv3")
    weights = write_weights(tmp_path_factory.mktemp("weights"), "weights-inception-2015-12-05-6726825d.pth")
    return extractor_module.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(weights))


def image_batch(height: int, width: int, count: int = 1) -> torch.Tensor:
    """uint8 (count, 3, H, W): illustrations cut to H x W."""
    side = max(height, width)
    return torch.from_numpy(np.ascontiguousarray(sample_images(height + width, count, side)[:, :height, :width])).permute(0, 3, 1, 2).contiguous()


def relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


@pytest.mark.parametrize("height, width", SIZES)
def test_pytorch_fid_impl_equals_pytorch_fids_network_output(height, width, pytorch_fid_network):
    """pytorch-fid's InceptionV3 (its FIDInception blocks, its resize and 2x - 1) on x / 255, as its
    ToTensor gives it, against pipe's features from the uint8 images."""
    images = image_batch(height, width)
    with torch.no_grad():
        theirs = pytorch_fid_network(images.float().div(255))[0].squeeze(3).squeeze(2).double().numpy()
    ours = pipe_features("pytorch-fid", images)
    assert theirs.std() > 0.05  # calibrated: features spread, not degenerate
    assert relative(ours, theirs) < 1e-6
    assert relative(pipe_features("tf", images), theirs) > 1e-3  # the other preprocessing is visibly not it


@pytest.mark.parametrize("height, width", SIZES)
def test_tf_impl_equals_torch_fidelitys_feature_extractor(height, width, torch_fidelity_extractor):
    """torch-fidelity's InceptionV3 (its TensorFlow 1.x resize and (x - 128) / 128) on the uint8 images."""
    images = image_batch(height, width)
    with torch.no_grad():
        theirs = torch_fidelity_extractor(images)[0].double().numpy()
    assert relative(pipe_features("tf", images), theirs) < 1e-6


@pytest.mark.parametrize("height, width", [(512, 512), (250, 333), (512, 400), (299, 299)])
def test_clean_resize_equals_clean_fids(height, width):
    """clean-fid's own "clean" resizer (PIL bicubic per channel in float, clipped) on an H x W x 3 array."""
    resize = reference("cleanfid.resize")
    image = image_batch(height, width, 1)
    theirs = resize.build_resizer("clean")(image[0].permute(1, 2, 0).numpy())
    ours = resize_like_pil_bicubic(image)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(ours, theirs)
