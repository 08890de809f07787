"""Run a Keras functional model in PyTorch, built from its `model_config` JSON rather than guessed.

Keras stores a model's architecture as JSON: each layer's class, its settings (padding mode, strides,
BatchNorm epsilon, upsampling interpolation) and the layers feeding it. `KerasGraph` turns that into
PyTorch modules one layer at a time, in NCHW layout, with Keras's semantics where they differ from
PyTorch's defaults: 'same' padding is zeros and may be asymmetric (more after than before), and
BatchNormalization uses its stored moving statistics and epsilon. Layers it does not know stop the
build with the layer's name and class.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": F.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "elu": F.elu,
    "softplus": F.softplus,
}


class KerasConfigError(ValueError):
    """The model config uses something this port does not implement (named in the message)."""


@dataclass(frozen=True)
class KerasLayer:
    name: str
    class_name: str
    config: dict
    inbound: tuple[str, ...]


def parse_model_config(model_config: dict) -> tuple[list[KerasLayer], list[str], list[str]]:
    """(layers in graph order, input layer names, output layer names) of a Model/Functional/Sequential config."""
    class_name = model_config.get("class_name")
    config = model_config.get("config", {})
    if class_name == "Sequential":
        entries = config["layers"] if isinstance(config, dict) else config
        layers, previous = [], None
        if entries and entries[0]["class_name"] != "InputLayer":
            layers.append(KerasLayer("input", "InputLayer", {}, ()))
            previous = "input"
        for entry in entries:
            name = entry["config"]["name"]
            layers.append(KerasLayer(name, entry["class_name"], entry["config"], (previous,) if previous else ()))
            previous = name
        return layers, [layers[0].name], [layers[-1].name]
    if class_name not in ("Model", "Functional"):
        raise KerasConfigError(f"unsupported model class {class_name!r} (expected Model, Functional or Sequential)")
    layers = [
        KerasLayer(entry.get("name", entry["config"]["name"]), entry["class_name"], entry["config"], _inbound_names(entry))
        for entry in config["layers"]
    ]
    return layers, [_tensor_name(ref) for ref in config["input_layers"]], [_tensor_name(ref) for ref in config["output_layers"]]


def _tensor_name(ref) -> str:
    # ["conv2d_18", 0, 0] in every Keras version; a bare pair when there is a single one.
    return ref[0] if isinstance(ref, list) and ref and isinstance(ref[0], str) else ref[0][0]


def _inbound_names(entry: dict) -> tuple[str, ...]:
    nodes = entry.get("inbound_nodes", [])
    if not nodes:
        return ()
    if len(nodes) > 1:
        raise KerasConfigError(f"layer {entry.get('name')!r} is applied more than once (shared layers are not supported)")
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3: {"args": [...keras tensors...], "kwargs": {...}}
        found: list[str] = []
        _collect_histories(node.get("args", []), found)
        return tuple(found)
    return tuple(inbound[0] for inbound in node)  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]


def _collect_histories(value, found: list[str]) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            found.append(value["config"]["keras_history"][0])
        else:
            for item in value.values():
                _collect_histories(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect_histories(item, found)


def module_key(layer_name: str) -> str:
    """A layer name as a valid PyTorch submodule name (conv2d_1 stays conv2d_1; odd characters become _)."""
    return re.sub(r"\W", "_", layer_name)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _activation(name: str | None, layer: str):
    name = name or "linear"
    if name not in _ACTIVATIONS:
        raise KerasConfigError(f"layer {layer!r}: activation {name!r} is not supported ({', '.join(_ACTIVATIONS)})")
    return _ACTIVATIONS[name]


def _check_channels_last(config: dict, layer: str) -> None:
    if config.get("data_format", "channels_last") != "channels_last":
        raise KerasConfigError(f"layer {layer!r}: only channels_last models are supported")


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding along one axis: (before, after); the odd pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


class KerasConv2D(nn.Module):
    def __init__(self, layer: KerasLayer, in_channels: int) -> None:
        super().__init__()
        config = layer.config
        _check_channels_last(config, layer.name)
        self.kernel = _pair(config["kernel_size"])
        self.stride = _pair(config.get("strides", 1))
        self.dilation = _pair(config.get("dilation_rate", 1))
        self.padding = config.get("padding", "valid")
        if self.padding not in ("same", "valid"):
            raise KerasConfigError(f"layer {layer.name!r}: padding {self.padding!r} is not supported")
        if config.get("groups", 1) != 1:
            raise KerasConfigError(f"layer {layer.name!r}: grouped convolutions are not supported")
        self.activation = _activation(config.get("activation"), layer.name)
        filters = int(config["filters"])
        self.weight = nn.Parameter(torch.zeros(filters, in_channels, *self.kernel))
        self.bias = nn.Parameter(torch.zeros(filters)) if config.get("use_bias", True) else None
        self.out_channels = filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding == "same":
            top, bottom = same_padding(x.shape[-2], self.kernel[0], self.stride[0], self.dilation[0])
            left, right = same_padding(x.shape[-1], self.kernel[1], self.stride[1], self.dilation[1])
            x = F.pad(x, (left, right, top, bottom))  # zeros, as Keras pads
        return self.activation(F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation))


class KerasBatchNorm(nn.Module):
    def __init__(self, layer: KerasLayer, channels: int) -> None:
        super().__init__()
        config = layer.config
        axis = config.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 3):
            raise KerasConfigError(f"layer {layer.name!r}: BatchNormalization over axis {axis} (only the channel axis is supported)")
        self.eps = float(config.get("epsilon", 1e-3))
        self.weight = nn.Parameter(torch.ones(channels)) if config.get("scale", True) else None
        self.bias = nn.Parameter(torch.zeros(channels)) if config.get("center", True) else None
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


class _Function(nn.Module):
    """A parameter-free layer: activation, upsampling, padding, merge."""

    def __init__(self, function) -> None:
        super().__init__()
        self.function = function

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.function(*inputs)


def _upsampling(layer: KerasLayer):
    _check_channels_last(layer.config, layer.name)
    size = _pair(layer.config.get("size", 2))
    mode = layer.config.get("interpolation", "nearest")
    if mode not in ("nearest", "bilinear"):
        raise KerasConfigError(f"layer {layer.name!r}: {mode!r} upsampling is not supported")
    if mode == "nearest":
        return lambda x: x.repeat_interleave(size[0], dim=-2).repeat_interleave(size[1], dim=-1)
    return lambda x: F.interpolate(x, scale_factor=size, mode="bilinear", align_corners=False)


def _zero_padding(layer: KerasLayer):
    padding = layer.config.get("padding", 1)
    if isinstance(padding, int):
        top = bottom = left = right = padding
    else:
        (top, bottom), (left, right) = [(p, p) if isinstance(p, int) else p for p in padding]
    return lambda x: F.pad(x, (left, right, top, bottom))


def _concatenate_dim(layer: KerasLayer) -> int:
    axis = layer.config.get("axis", -1)
    if axis not in (-1, 3):
        raise KerasConfigError(f"layer {layer.name!r}: concatenation along axis {axis} (only channels are supported)")
    return 1


class KerasGraph(nn.Module):
    """The Keras model of `model_config` as a PyTorch module taking and returning NCHW tensors.

    Parameters are created empty (zeros); load them with `load_state_dict` (see `weights.py`).
    """

    def __init__(self, model_config: dict) -> None:
        super().__init__()
        layers, inputs, outputs = parse_model_config(model_config)
        if len(inputs) != 1 or len(outputs) != 1:
            raise KerasConfigError(f"expected one input and one output, got inputs {inputs} and outputs {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        self.order: list[tuple[str, str, tuple[str, ...]]] = []
        self.ops = nn.ModuleDict()
        channels: dict[str, int] = {}
        for layer in layers:
            key = module_key(layer.name)
            if layer.class_name == "InputLayer":
                shape = layer.config.get("batch_input_shape") or layer.config.get("batch_shape") or [None, None, None, None]
                channels[layer.name] = int(shape[-1]) if shape[-1] is not None else 1
                continue
            missing = [name for name in layer.inbound if name not in channels]
            if missing:
                raise KerasConfigError(f"layer {layer.name!r} reads {missing}, which come later in the config")
            in_channels = [channels[name] for name in layer.inbound]
            module, out_channels = self._build(layer, in_channels)
            self.ops[key] = module
            channels[layer.name] = out_channels
            self.order.append((layer.name, key, layer.inbound))
        self.in_channels = channels[self.input_name]
        self.out_channels = channels[self.output_name]
        # After each step, the values no later step reads: freed at once, so a deep U-Net holds only
        # the activations its skip connections still need.
        last_use = {self.input_name: -1}
        for step, (_, _, inbound) in enumerate(self.order):
            for source in inbound:
                last_use[source] = step
        self.release = [
            [name for name, step in last_use.items() if step == index and name != self.output_name]
            for index in range(len(self.order))
        ]

    @staticmethod
    def _build(layer: KerasLayer, in_channels: list[int]) -> tuple[nn.Module, int]:
        kind = layer.class_name
        if kind == "Conv2D":
            conv = KerasConv2D(layer, in_channels[0])
            return conv, conv.out_channels
        if kind == "BatchNormalization":
            return KerasBatchNorm(layer, in_channels[0]), in_channels[0]
        if kind == "Activation":
            return _Function(_activation(layer.config.get("activation"), layer.name)), in_channels[0]
        if kind == "ReLU" and not layer.config.get("max_value") and not layer.config.get("threshold"):
            slope = float(layer.config.get("negative_slope", 0.0))
            return _Function(lambda x: F.leaky_relu(x, slope)), in_channels[0]
        if kind == "LeakyReLU":
            slope = float(layer.config.get("alpha", layer.config.get("negative_slope", 0.3)))
            return _Function(lambda x: F.leaky_relu(x, slope)), in_channels[0]
        if kind == "UpSampling2D":
            return _Function(_upsampling(layer)), in_channels[0]
        if kind == "ZeroPadding2D":
            return _Function(_zero_padding(layer)), in_channels[0]
        if kind in ("Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout"):
            return _Function(lambda x: x), in_channels[0]  # inference: identity
        if kind == "Concatenate":
            dim = _concatenate_dim(layer)
            return _Function(lambda *xs: torch.cat(xs, dim=dim)), sum(in_channels)
        if kind == "Add":
            return _Function(lambda *xs: torch.stack(xs).sum(dim=0)), in_channels[0]
        raise KerasConfigError(f"layer {layer.name!r}: Keras layer class {kind!r} is not supported by this port")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        values = {self.input_name: x}
        for (name, key, inbound), done in zip(self.order, self.release):
            values[name] = self.ops[key](*(values[source] for source in inbound))
            for source in done:
                del values[source]
        return values[self.output_name]
