"""The settings of one `pipe extract` run, resolved (device chosen, weights located) before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extractors.weights import require_weights
from pipeline.errors import PipeError
from pipeline.executors import default_workers

if TYPE_CHECKING:
    import torch

# PyTorch and the method registry are imported where used: the CPU workers unpickle this config and
# should start without loading PyTorch (see pipeline.extract.opencv_units).


@dataclass(frozen=True)
class ExtractConfig:
    root: Path
    methods: tuple[str, ...]
    # Per-method option overrides: {"xdog": {"sigma": (0.3, 0.5)}}; tuples are drawn per sample.
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    batch_size: int = 16
    # CPU worker processes for PNG decode and encode (0: everything in this process); with
    # executor "ray", the CPUs of the local Ray runtime (see pipeline.executors.ExecutorSpec).
    workers: int = field(default_factory=default_workers)
    executor: str = "local"
    ray_address: str | None = None
    size: int | None = None
    equalize: bool = False
    binarize: str | None = None
    # Weights files by method; methods not named use the default location (see extractors.weights).
    weights: dict[str, Path] = field(default_factory=dict)
    # zlib level 0-9; None keeps OpenCV's default.
    png_compression: int | None = None
    flush_seconds: float = 5.0
    # Extract again for keys already in the ledger (replacing their rows and files).
    redo: bool = False

    def __post_init__(self) -> None:
        from extractors.methods import METHODS

        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise PipeError(f"unknown method {unknown[0] if unknown else ''!r}; choose from {', '.join(METHODS)}")
        if self.batch_size < 1:
            raise PipeError("--batch-size must be at least 1")
        if self.binarize not in (None, "otsu"):
            raise PipeError(f"--binarize takes 'otsu', got {self.binarize!r}")

    def settings(self, method: str, device: torch.device) -> dict[str, Any]:
        """The option settings of `method` for this run, with post-processing added and 'auto' resolved."""
        from extractors.methods import method_options

        settings = method_options(method, self.overrides.get(method))
        if settings.get("precision") == "auto":
            settings["precision"] = "bf16" if device.type == "cuda" else "fp32"
        settings.update(size=self.size, equalize=self.equalize, binarize=self.binarize)
        return settings

    def options(self, device: torch.device) -> dict[str, Any]:
        """What decides each method's files, by flag and method (a resume must keep them; a new method is new work)."""
        from extractors.methods import METHODS

        values: dict[str, Any] = {}
        for method in self.methods:
            settings = self.settings(method, device)
            own = {option.name for option in METHODS[method].options}
            run_wide = {"seed": self.seed, "png-compression": self.png_compression}
            for name, value in {**settings, **run_wide}.items():
                values[f"--set {method}.{name}" if name in own else f"--{name} for {method}"] = value
        return values

    def weights_path(self, method: str) -> Path:
        return require_weights(method, self.weights.get(method))


def resolve_device(name: str) -> torch.device:
    from train.device import resolve_device as train_device
    from train.errors import TrainingError

    try:
        return train_device(name)
    except TrainingError as exc:
        raise PipeError(str(exc)) from None
