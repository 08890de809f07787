"""Keras HDF5 model files (what `keras.models.Model.save('mod.h5')` writes), read and written with h5py.

Layout: the root attribute `model_config` holds the architecture as JSON; the group `model_weights`
lists its layers in the attribute `layer_names`, and each layer's group lists its arrays in
`weight_names` (e.g. `conv2d_1/kernel:0`), stored as datasets under those names. Kernels are in Keras
order (kh, kw, in, out). `write_keras_h5` exists to make stand-in files with the same layout for tests
and benchmarks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np


class KerasFileError(ValueError):
    """The file is not a Keras HDF5 model pipe can read; the message says why."""


@dataclass
class KerasModelFile:
    model_config: dict
    # layer name -> parameter name (kernel, bias, gamma, beta, moving_mean, moving_variance) -> array
    weights: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    keras_version: str = ""
    backend: str = ""


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def parameter_name(weight_name: str) -> str:
    """`conv2d_1/kernel:0` -> `kernel`."""
    return re.sub(r":\d+$", "", weight_name.rsplit("/", 1)[-1])


def read_keras_h5(path: Path) -> KerasModelFile:
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise KerasFileError(f"{path} is not a readable HDF5 file ({exc})") from None
    with handle:
        if "model_config" not in handle.attrs:
            raise KerasFileError(
                f"{path} has no model_config: it holds weights only. pipe needs the whole saved model "
                "(sketchKeras publishes it as mod.h5), so that the port follows the stored architecture"
            )
        config = json.loads(_text(handle.attrs["model_config"]))
        group = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in group.attrs:
            raise KerasFileError(f"{path} has no layer_names attribute: not a Keras 2 HDF5 model file")
        weights: dict[str, dict[str, np.ndarray]] = {}
        for layer in (_text(name) for name in group.attrs["layer_names"]):
            layer_group = group[layer]
            names = [_text(name) for name in layer_group.attrs.get("weight_names", [])]
            if names:
                weights[layer] = {parameter_name(name): np.asarray(layer_group[name][()]) for name in names}
        return KerasModelFile(
            model_config=config,
            weights=weights,
            keras_version=_text(handle.attrs.get("keras_version", "")),
            backend=_text(handle.attrs.get("backend", "")),
        )


def write_keras_h5(path: Path, model: KerasModelFile) -> None:
    """Write `model` in the Keras 2 HDF5 layout (for stand-in files; real ones come from Keras)."""
    layer_names = [layer["config"]["name"] for layer in model.model_config["config"]["layers"]]
    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = (model.keras_version or "2.0.8").encode()
        handle.attrs["backend"] = (model.backend or "tensorflow").encode()
        handle.attrs["model_config"] = json.dumps(model.model_config).encode()
        group = handle.create_group("model_weights")
        group.attrs["layer_names"] = np.array([name.encode() for name in layer_names])
        group.attrs["backend"] = handle.attrs["backend"]
        group.attrs["keras_version"] = handle.attrs["keras_version"]
        for name in layer_names:
            layer_group = group.create_group(name)
            params = model.weights.get(name, {})
            weight_names = [f"{name}/{param}:0" for param in params]
            layer_group.attrs["weight_names"] = np.array([w.encode() for w in weight_names], dtype="S")
            for weight_name, array in zip(weight_names, params.values()):
                layer_group.create_dataset(weight_name, data=array)
