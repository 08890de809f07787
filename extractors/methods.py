"""The extraction methods `pipe extract` knows: their options, per-sample parameter draws, and batch runners.

A method's options have defaults; an option given as several values (a tuple, or `a,b,c` on the
command line) is drawn per sample, uniformly, from a generator the stage seeds with (seed, method,
key). The drawn values and the post-processing settings form the sample's parameter dict, which is
recorded in the ledger; `apply_lines` turns a batch plus those dicts into the exact same output
again, so a recorded row reproduces its file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from extractors import canny, dilate, highpass, opencv_forms, xdog
from extractors.draws import draw_params  # noqa: F401 - part of this module's interface
from extractors.gray import extract_gray
from extractors.postprocess import binarize_otsu, equalize_histogram, resize_lines

POST_KEYS = ("size", "equalize", "binarize")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Option:
    name: str
    default: Any  # a value, or a tuple of values to draw from per sample
    help: str
    choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class LineMethod:
    name: str
    summary: str
    options: tuple[Option, ...]
    # Options the batch function takes per sample; samples differing only in these share one call.
    per_sample: tuple[str, ...]
    run: Callable[..., torch.Tensor]  # (images, networks, **options) -> uint8 (B, 1, H, W)
    needs_weights: bool = False

    def option(self, name: str) -> Option:
        for option in self.options:
            if option.name == name:
                return option
        known = ", ".join(o.name for o in self.options) or "none"
        raise ValueError(f"{self.name} has no option {name!r} (its options: {known})")


def _classic(name: str, summary: str, extract: Callable[..., torch.Tensor], *options: Option) -> LineMethod:
    """A method computed from the images alone (no networks), its first option (its scale) drawn per sample."""
    return LineMethod(name, summary, options, per_sample=(options[0].name,), run=lambda images, networks, **o: extract(images, **o))


def _run_sketchkeras(images, networks, mode, precision, network_batch):
    from extractors.sketchkeras.extract import extract_sketchkeras

    return extract_sketchkeras(images, networks["sketchkeras"], mode, max_network_batch=network_batch, autocast_dtype=PRECISIONS[precision])


def _run_ldm(images, networks):
    from extractors.ldm import extract_ldm

    return extract_ldm(images, networks["ldm"])


METHODS: dict[str, LineMethod] = {
    method.name: method
    for method in (
        _classic("xdog", "XDoG (Winnemoeller 2012), sharpened form with a near-hard threshold", xdog.extract_xdog,
            Option("sigma", xdog.SIGMA_CHOICES, "Gaussian sigma of the fine blur"),
            Option("k", xdog.K, "ratio of the coarse blur's sigma to the fine one"),
            Option("p", xdog.P, "sharpening strength"),
            Option("eps", xdog.EPS, "threshold on the sharpened response"),
            Option("phi", xdog.PHI, "softness of the threshold (large = hard)"),
        ),
        _classic("dilate", "dilate, absolute difference, invert, grey (Lee & Lee 2020)", dilate.extract_dilate,
            Option("kernel_size", dilate.KERNEL_CHOICES, "side of the square all-ones kernel"),
        ),
        _classic("canny", "Gaussian smoothing then Canny with hysteresis, inverted", canny.extract_canny,
            Option("sigma", canny.SIGMA, "Gaussian sigma before edge detection"),
            Option("low", canny.LOW, "hysteresis low threshold (L1 gradient)"),
            Option("high", canny.HIGH, "hysteresis high threshold (L1 gradient)"),
        ),
        _classic("highpass", "per-channel blur minus image, max over channels, normalized, inverted", highpass.extract_highpass,
            Option("sigma", highpass.SIGMA, "Gaussian sigma of the blur"),
        ),
        LineMethod("gray", "the greyscale image itself", (), per_sample=(), run=lambda images, networks: extract_gray(images)),
        LineMethod(
            "sketchkeras",
            "sketchKeras network (needs converted weights)",
            (
                Option("mode", "raw", "post-processing: raw, enhanced (<0.1 -> 0) or pured (<0.18 -> 0)", ("raw", "enhanced", "pured")),
                Option("precision", "auto", "network precision: fp32, bf16, fp16; auto = bf16 on CUDA, fp32 on CPU", ("auto", "fp32", "bf16", "fp16")),
                Option("network_batch", 0, "most single-channel inputs per forward pass (0: the whole batch, 3 per image)"),
            ),
            per_sample=("mode",),
            run=_run_sketchkeras,
            needs_weights=True,
        ),
        LineMethod("ldm", "Lee & Lee's Line Detection Model at 128x128 (needs a trained checkpoint)", (), per_sample=(), run=_run_ldm, needs_weights=True),
    )
}


def parse_method_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in METHODS]
    if unknown or not names:
        raise ValueError(f"unknown method {unknown[0] if unknown else text!r}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


def _convert(option: Option, text: str, method: str):
    kind = type(option.default[0] if isinstance(option.default, tuple) else option.default)
    try:
        value = kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except ValueError:
        raise ValueError(f"{method}.{option.name} takes {kind.__name__} values, got {text!r}") from None
    if option.choices and value not in option.choices:
        raise ValueError(f"{method}.{option.name} must be one of {', '.join(option.choices)}, got {text!r}")
    return value


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`["xdog.sigma=0.3,0.5", "canny.low=10"]` -> {"xdog": {"sigma": (0.3, 0.5)}, "canny": {"low": 10.0}}."""
    overrides: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, text = item.partition("=")
        method_name, dot, option_name = target.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set takes METHOD.OPTION=VALUE[,VALUE...], got {item!r}")
        if method_name not in METHODS:
            raise ValueError(f"--set {item!r}: unknown method {method_name!r}")
        method = METHODS[method_name]
        option = method.option(option_name)
        values = tuple(_convert(option, part.strip(), method_name) for part in text.split(","))
        overrides.setdefault(method_name, {})[option_name] = values if len(values) > 1 else values[0]
    return overrides


def method_options(method: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The option settings of `method`: defaults with `overrides` applied (tuples are drawn per sample)."""
    settings = {option.name: option.default for option in METHODS[method].options}
    settings.update(overrides or {})
    return settings


def post_process(lines: torch.Tensor, size: int | None, equalize: bool, binarize: str | None) -> torch.Tensor:
    """Resize, then equalize the histogram, then binarize (each optional), in that order."""
    if size:
        lines = resize_lines(lines, size)
    if equalize:
        lines = equalize_histogram(lines)
    if binarize == "otsu":
        lines = binarize_otsu(lines)
    elif binarize:
        raise ValueError(f"unknown binarization {binarize!r} (only 'otsu')")
    return lines


def apply_lines(method: str, images: torch.Tensor, params: list[dict[str, Any]], networks: dict[str, torch.nn.Module] | None = None) -> torch.Tensor:
    """Run `method` on uint8 RGB (B,3,H,W) with each sample's recorded `params`; uint8 (B,1,h,w) lines.

    Samples whose shared parameters differ are run in separate calls, so any mix of parameters works.
    """
    spec = METHODS[method]
    if len(params) != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {len(params)} parameter sets")
    outputs: list[torch.Tensor | None] = [None] * len(params)
    groups: dict[tuple, list[int]] = {}
    for index, sample in enumerate(params):
        if sample.get("impl") == opencv_forms.IMPL:  # made by the OpenCV form: made again by it
            rgb = images[index].permute(1, 2, 0).cpu().numpy()
            outputs[index] = torch.from_numpy(opencv_forms.extract(method, rgb, sample)).unsqueeze(0).to(images.device)
            continue
        shared = tuple(sorted((k, v) for k, v in sample.items() if k not in spec.per_sample))
        groups.setdefault(shared, []).append(index)
    for shared, indices in groups.items():
        settings = dict(shared)
        post = {key: settings.pop(key, None) for key in POST_KEYS}
        per_sample = {name: [params[i][name] for i in indices] for name in spec.per_sample}
        index = torch.tensor(indices, device=images.device)
        lines = spec.run(images.index_select(0, index), networks or {}, **settings, **per_sample)
        lines = post_process(lines, post["size"], bool(post["equalize"]), post["binarize"])
        for position, sample_index in enumerate(indices):
            outputs[sample_index] = lines[position]
    return torch.stack(outputs)  # type: ignore[arg-type]
