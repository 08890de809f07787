"""The sketchKeras port: a Keras-layout HDF5 file with random weights, converted, against independent forwards."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from tests.extractors import reference
from tests.stand_ins.sketchkeras import random_keras_model, sketchkeras_model_config
from extractors.sketchkeras.extract import extract_sketchkeras, sketchkeras_input, strength_to_lines
from extractors.sketchkeras.keras_file import KerasFileError, write_keras_h5
from extractors.sketchkeras.keras_graph import KerasConfigError, KerasGraph, same_padding
from extractors.sketchkeras.weights import convert_keras_model, load_converted
from pipeline.cli import main
from tests.extractors.numpy_keras import keras_forward_numpy
from tests.helpers import picture


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory) -> Path:
    """The documented sketchKeras architecture at full width, random weights, Keras 2 HDF5 layout."""
    path = tmp_path_factory.mktemp("keras") / "mod.h5"
    write_keras_h5(path, random_keras_model(sketchkeras_model_config(), seed=3))
    return path


@pytest.fixture(scope="module")
def converted(keras_file, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("converted") / "sketchkeras.pt"
    assert main(["weights", "convert", "sketchkeras", str(keras_file), str(out)]) == 0
    return out


def test_conversion_follows_the_model_config(keras_file, converted):
    network = load_converted(converted)
    with h5py.File(keras_file) as handle:
        config = json.loads(handle.attrs["model_config"])
    convs = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Conv2D"]
    norms = [layer for layer in config["config"]["layers"] if layer["class_name"] == "BatchNormalization"]
    assert len(convs) == 18 and len(norms) == 17
    assert sum(p.numel() for p in network.parameters()) == 18_637_601
    # BatchNorm epsilon and Keras kernel layout (kh, kw, in, out) -> (out, in, kh, kw) come from the file.
    first = network.ops[convs[0]["name"]]
    with h5py.File(keras_file) as handle:
        kernel = handle["model_weights"][convs[0]["name"]][f"{convs[0]['name']}/kernel:0"][()]
    assert torch.equal(first.weight, torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
    assert all(network.ops[n["name"]].eps == 1e-3 for n in norms)


def test_pytorch_forward_matches_an_independent_numpy_forward(keras_file, converted):
    network = load_converted(converted)
    x = np.random.default_rng(0).normal(0, 0.5, (2, 48, 64, 1))
    theirs = keras_forward_numpy(keras_file, x)
    with torch.no_grad():
        ours = network(torch.from_numpy(x).permute(0, 3, 1, 2).float()).permute(0, 2, 3, 1).double().numpy()
    error = np.abs(ours - theirs).max() / np.abs(theirs).max()
    print(f"sketchkeras port vs NumPy forward: max relative error {error:.1e}")
    assert error < 1e-5


def test_keras_same_padding_puts_the_odd_pixel_after():
    assert same_padding(64, 4, 1, 1) == (1, 2)  # the decoder's 4x4 convolutions
    assert same_padding(64, 4, 2, 1) == (1, 1)
    assert same_padding(63, 3, 2, 1) == (1, 1)


def test_preprocessing_matches_sketchkeras_helper():
    rgb = picture(5, 60, 50)
    ours = sketchkeras_input(torch.from_numpy(rgb).permute(2, 0, 1)[None], canvas=64).reshape(3, 64, 64).numpy()
    theirs = reference.sketchkeras_input_reference(rgb, canvas=64)
    assert np.abs(ours - theirs).max() < 1e-6
    assert np.all(ours[:, 50:, :] == 0) and np.all(ours[:, :, 60:] == 0)  # padded bottom and right with zeros


def test_whole_extraction_matches_numpy_pipeline(keras_file, converted):
    network = load_converted(converted)
    rgb = picture(6, 64, 48)
    strength = keras_forward_numpy(keras_file, reference.sketchkeras_input_reference(rgb, canvas=64)[..., None])
    strength = strength[..., 0][:, :48, :64].max(axis=0)
    images = torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous()
    for mode in ("raw", "enhanced", "pured"):
        ours = extract_sketchkeras(images, network, mode, canvas=64)[0, 0].numpy()
        theirs = reference.sketchkeras_output_reference(strength, mode)
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        # Truncation to 8 bits turns a 1e-6 difference into one grey level now and then.
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, mode


def test_post_processing_modes_cut_weak_lines():
    strength = torch.tensor([0.05, 0.15, 0.5, 1.2, -0.3]).view(1, 1, 1, 5)
    assert strength_to_lines(strength, "raw").flatten().tolist() == [242, 216, 127, 0, 255]
    assert strength_to_lines(strength, "enhanced").flatten().tolist() == [255, 216, 127, 0, 255]
    assert strength_to_lines(strength, "pured").flatten().tolist() == [255, 255, 127, 0, 255]


def test_against_keras_itself(keras_file, converted):
    keras = pytest.importorskip("tensorflow").keras
    model = keras.models.load_model(keras_file, compile=False)
    x = np.random.default_rng(1).normal(0, 0.5, (1, 32, 32, 1)).astype(np.float32)
    with torch.no_grad():
        ours = load_converted(converted)(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert np.abs(ours - model.predict(x)).max() < 1e-4


def test_files_that_are_not_sketchkeras_get_one_clear_line(tmp_path, capsys):
    weights_only = tmp_path / "weights_only.h5"
    with h5py.File(weights_only, "w") as handle:
        handle.attrs["layer_names"] = np.array([b"conv2d_1"])
    not_hdf5 = tmp_path / "mod.h5"
    not_hdf5.write_text("<html>404</html>")
    for path, message in ((weights_only, "no model_config"), (not_hdf5, "not a readable HDF5"), (tmp_path / "absent.h5", "not found")):
        assert main(["weights", "convert", "sketchkeras", str(path), str(tmp_path / "out.pt")]) == 2
        assert message in " ".join(capsys.readouterr().err.split())


def test_unsupported_layers_are_named():
    config = sketchkeras_model_config(width=0.125)
    config["config"]["layers"][1]["class_name"] = "SeparableConv2D"
    with pytest.raises(KerasConfigError, match="SeparableConv2D"):
        KerasGraph(config)


def test_wrong_channel_count_is_refused(tmp_path):
    config = sketchkeras_model_config(width=0.125)
    config["config"]["layers"][0]["config"]["batch_input_shape"][-1] = 3
    path = tmp_path / "rgb.h5"
    write_keras_h5(path, random_keras_model(config))
    with pytest.raises(KerasFileError, match="3 channel"):
        convert_keras_model(path, tmp_path / "out.pt")
