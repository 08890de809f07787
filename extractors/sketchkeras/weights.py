"""`pipe weights convert sketchkeras mod.h5 OUT`: a Keras model file to a PyTorch file, and loading it back.

The converted file is a plain `torch.save` dict (readable with `weights_only=True`): the format tag,
the model_config JSON the network is rebuilt from, the state dict in PyTorch layouts, and where it
came from (file name, SHA-256, Keras version and backend).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from extractors.sketchkeras.keras_file import KerasFileError, KerasModelFile, read_keras_h5
from extractors.sketchkeras.keras_graph import KerasBatchNorm, KerasConfigError, KerasConv2D, KerasGraph, parse_model_config

FORMAT = "pipe.keras-graph/1"


@dataclass(frozen=True)
class ConversionReport:
    layers: int
    parameters: int
    keras_version: str
    backend: str
    sha256: str


def keras_state_dict(graph: KerasGraph, model: KerasModelFile) -> dict[str, torch.Tensor]:
    """The Keras arrays of `model` mapped onto `graph`'s parameters, in PyTorch layouts."""
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for name, key, _ in graph.order:
        module = graph.ops[key]
        if not isinstance(module, (KerasConv2D, KerasBatchNorm)):
            continue
        arrays = model.weights.get(name)
        if arrays is None:
            raise KerasFileError(f"layer {name!r} has no weights in the file")
        used.add(name)
        if isinstance(module, KerasConv2D):
            # Keras kernels are (kh, kw, in, out); PyTorch wants (out, in, kh, kw).
            pairs = {"weight": np.transpose(arrays["kernel"], (3, 2, 0, 1))}
            if module.bias is not None:
                pairs["bias"] = arrays["bias"]
        else:
            pairs = {"running_mean": arrays["moving_mean"], "running_var": arrays["moving_variance"]}
            if module.weight is not None:
                pairs["weight"] = arrays["gamma"]
            if module.bias is not None:
                pairs["bias"] = arrays["beta"]
        for param, array in pairs.items():
            target = f"ops.{key}.{param}"
            expected = tuple(graph.state_dict()[target].shape)
            if tuple(array.shape) != expected:
                raise KerasFileError(f"layer {name!r}: {param} has shape {tuple(array.shape)}, the config implies {expected}")
            state[target] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    unused = sorted(set(model.weights) - used)
    if unused:
        raise KerasFileError(f"the file has weights for layers the config does not run: {', '.join(unused[:5])}")
    return state


def convert_keras_model(source: Path, out: Path, expect_channels: tuple[int, int] | None = (1, 1)) -> ConversionReport:
    """Read a Keras HDF5 model, rebuild it from its model_config, and save the PyTorch file `out`."""
    model = read_keras_h5(source)
    if model.backend == "theano":
        raise KerasFileError(f"{source} was saved with the Theano backend, whose kernels are flipped; re-save it with TensorFlow")
    try:
        graph = KerasGraph(model.model_config)
    except (KerasConfigError, KeyError, TypeError) as exc:
        raise KerasFileError(f"{source}: {exc}") from None
    if expect_channels is not None and (graph.in_channels, graph.out_channels) != expect_channels:
        raise KerasFileError(
            f"{source} maps {graph.in_channels} channel(s) to {graph.out_channels}; sketchKeras maps 1 to 1 (is this mod.h5?)"
        )
    state = keras_state_dict(graph, model)
    graph.load_state_dict(state, strict=True)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    payload = {
        "format": FORMAT,
        "model_config": json.dumps(model.model_config),
        "state_dict": graph.state_dict(),
        "source": {"file": source.name, "sha256": digest, "keras_version": model.keras_version, "backend": model.backend},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    layers, _, _ = parse_model_config(model.model_config)
    return ConversionReport(
        layers=len(layers),
        parameters=sum(p.numel() for p in graph.parameters()),
        keras_version=model.keras_version,
        backend=model.backend,
        sha256=digest,
    )


def load_converted(path: Path, device: torch.device | str = "cpu") -> KerasGraph:
    """The network saved by `convert_keras_model`, in eval mode on `device`."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for a file that is not its own
        raise KerasFileError(f"{path} is not a converted weights file ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise KerasFileError(f"{path} is not a file written by `pipe weights convert`")
    graph = KerasGraph(json.loads(payload["model_config"]))
    graph.load_state_dict(payload["state_dict"], strict=True)
    return graph.to(device).eval()
