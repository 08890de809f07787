"""An independent NumPy forward pass of a Keras HDF5 model, straight from the file (NHWC, float64).

It shares no code with the PyTorch port: it reads the HDF5 file with h5py itself, walks the
model_config itself, and implements Keras's layers (same/valid padding, BatchNormalization with moving
statistics, nearest upsampling, concatenation) with plain NumPy, so agreement means the port follows
the file.
"""

from __future__ import annotations

import json
import math

import h5py
import numpy as np


def _load(path):
    with h5py.File(path, "r") as handle:
        config = json.loads(handle.attrs["model_config"])
        group = handle["model_weights"]
        weights = {}
        for layer in group.attrs["layer_names"]:
            layer = layer.decode()
            names = [n.decode() for n in group[layer].attrs["weight_names"]]
            weights[layer] = {n.split("/")[-1].split(":")[0]: group[layer][n][()].astype(np.float64) for n in names}
    return config, weights


def _conv(x, kernel, bias, stride, padding, activation):
    kh, kw, cin, cout = kernel.shape
    n, h, w, _ = x.shape
    if padding == "same":
        out_h, out_w = math.ceil(h / stride), math.ceil(w / stride)
        pad_h = max((out_h - 1) * stride + kh - h, 0)
        pad_w = max((out_w - 1) * stride + kw - w, 0)
        x = np.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    else:
        out_h, out_w = (h - kh) // stride + 1, (w - kw) // stride + 1
    out = np.zeros((n, out_h, out_w, cout))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride, :]
            out += patch @ kernel[i, j]
    out += bias
    if activation == "relu":
        out = np.maximum(out, 0)
    elif activation not in ("linear", None):
        raise NotImplementedError(activation)
    return out


def keras_forward_numpy(path, x_nhwc: np.ndarray) -> np.ndarray:
    config, weights = _load(path)
    values = {}
    for layer in config["config"]["layers"]:
        name, kind, cfg = layer["name"], layer["class_name"], layer["config"]
        inputs = [values[node[0]] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "InputLayer":
            values[name] = x_nhwc.astype(np.float64)
        elif kind == "Conv2D":
            w = weights[name]
            values[name] = _conv(inputs[0], w["kernel"], w["bias"], cfg["strides"][0], cfg["padding"], cfg["activation"])
        elif kind == "BatchNormalization":
            w = weights[name]
            values[name] = (inputs[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg["epsilon"]) * w["gamma"] + w["beta"]
        elif kind == "Activation":
            values[name] = np.maximum(inputs[0], 0) if cfg["activation"] == "relu" else inputs[0]
        elif kind == "UpSampling2D":
            sy, sx = cfg["size"]
            values[name] = inputs[0].repeat(sy, axis=1).repeat(sx, axis=2)
        elif kind == "Concatenate":
            values[name] = np.concatenate(inputs, axis=-1)
        else:
            raise NotImplementedError(kind)
    return values[config["config"]["output_layers"][0][0]]
