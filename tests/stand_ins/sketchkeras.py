"""The sketchKeras architecture as its public ports document it, written as a Keras model_config.

A U-Net on one-channel 512x512 inputs: six encoder blocks (3x3 convolutions, 4x4 stride-2
convolutions to go down, each followed by BatchNormalization and ReLU), four decoder blocks (nearest
2x upsampling of the concatenated skip and deeper features, a 4x4 then a 3x3 convolution), and a
final 3x3 convolution to one linear channel. Convolutions pad 'same'; BatchNorm epsilon is Keras's
1e-3.

It makes stand-in files (random weights, the same layout) for tests and benchmarks; the
port in extractors/sketchkeras never uses it: it follows whatever model_config the converted file carries.
"""

from __future__ import annotations

import numpy as np

from extractors.sketchkeras.keras_file import KerasModelFile

# (filters, kernel, stride) of each encoder block's convolutions.
_ENCODER = [
    [(32, 3, 1)],
    [(64, 4, 2), (64, 3, 1)],
    [(128, 4, 2), (128, 3, 1)],
    [(256, 4, 2), (256, 3, 1)],
    [(512, 4, 2)],
    [(512, 3, 1)],
]
# (filters of the 4x4 convolution, filters of the 3x3 one) of each decoder block.
_DECODER = [(512, 256), (256, 128), (128, 64), (64, 32)]


class _ConfigBuilder:
    def __init__(self) -> None:
        self.layers: list[dict] = []
        self.counts: dict[str, int] = {}

    def add(self, kind: str, prefix: str, config: dict, inbound: list[str]) -> str:
        self.counts[prefix] = self.counts.get(prefix, 0) + 1
        name = f"{prefix}_{self.counts[prefix]}"
        self.layers.append(
            {
                "name": name,
                "class_name": kind,
                "config": {"name": name, "trainable": True, **config},
                "inbound_nodes": [[[source, 0, 0, {}] for source in inbound]] if inbound else [],
            }
        )
        return name

    def conv_bn_relu(self, source: str, filters: int, kernel: int, stride: int, width: float) -> str:
        conv = self.conv(source, max(1, int(filters * width)), kernel, stride)
        norm = self.add("BatchNormalization", "batch_normalization", {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}, [conv])
        return self.add("Activation", "activation", {"activation": "relu"}, [norm])

    def conv(self, source: str, filters: int, kernel: int, stride: int) -> str:
        config = {
            "filters": filters,
            "kernel_size": [kernel, kernel],
            "strides": [stride, stride],
            "padding": "same",
            "data_format": "channels_last",
            "dilation_rate": [1, 1],
            "activation": "linear",
            "use_bias": True,
        }
        return self.add("Conv2D", "conv2d", config, [source])


def sketchkeras_model_config(width: float = 1.0) -> dict:
    """The Keras 2 model_config of the documented architecture; `width` scales every layer's filters
    (1.0 is the published network; tests use narrower ones to stay fast)."""
    build = _ConfigBuilder()
    source = build.add("InputLayer", "input", {"batch_input_shape": [None, None, None, 1], "dtype": "float32", "sparse": False}, [])
    skips = []
    for block in _ENCODER:
        for filters, kernel, stride in block:
            source = build.conv_bn_relu(source, filters, kernel, stride, width)
        skips.append(source)
    deeper = skips.pop()
    for (first, second), skip in zip(_DECODER, reversed(skips[1:])):
        merged = build.add("Concatenate", "concatenate", {"axis": -1}, [skip, deeper])
        up = build.add("UpSampling2D", "up_sampling2d", {"size": [2, 2], "data_format": "channels_last"}, [merged])
        deeper = build.conv_bn_relu(up, first, 4, 1, width)
        deeper = build.conv_bn_relu(deeper, second, 3, 1, width)
    merged = build.add("Concatenate", "concatenate", {"axis": -1}, [skips[0], deeper])
    output = build.conv(merged, 1, 3, 1)
    return {
        "class_name": "Model",
        "config": {"name": "model_1", "layers": build.layers, "input_layers": [["input_1", 0, 0]], "output_layers": [[output, 0, 0]]},
    }


def random_keras_model(model_config: dict, seed: int = 0) -> KerasModelFile:
    """Random weights (He-scaled kernels, plausible BatchNorm statistics) in Keras layouts for `model_config`."""
    rng = np.random.default_rng(seed)
    weights: dict[str, dict[str, np.ndarray]] = {}
    channels: dict[str, int] = {}
    for layer in model_config["config"]["layers"]:
        name, kind, config = layer["name"], layer["class_name"], layer["config"]
        inbound = [entry[0] for entry in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
        if kind == "InputLayer":
            channels[name] = config["batch_input_shape"][-1]
        elif kind == "Conv2D":
            kh, kw = config["kernel_size"]
            fan_in = kh * kw * channels[inbound[0]]
            kernel = rng.normal(0, np.sqrt(2.0 / fan_in), (kh, kw, channels[inbound[0]], config["filters"]))
            weights[name] = {"kernel": kernel.astype(np.float32), "bias": rng.normal(0, 0.05, config["filters"]).astype(np.float32)}
            channels[name] = config["filters"]
        elif kind == "BatchNormalization":
            count = channels[inbound[0]]
            weights[name] = {
                "gamma": rng.uniform(0.5, 1.5, count).astype(np.float32),
                "beta": rng.normal(0, 0.1, count).astype(np.float32),
                "moving_mean": rng.normal(0, 0.2, count).astype(np.float32),
                "moving_variance": rng.uniform(0.5, 2.0, count).astype(np.float32),
            }
            channels[name] = count
        elif kind == "Concatenate":
            channels[name] = sum(channels[source] for source in inbound)
        else:
            channels[name] = channels[inbound[0]]
    return KerasModelFile(model_config=model_config, weights=weights, keras_version="2.0.8", backend="tensorflow")
