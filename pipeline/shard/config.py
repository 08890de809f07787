"""The options of `pipe shard`, in one frozen dataclass, and the fingerprint resume checks them against."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.executors import default_workers
from synth.lines import LineAugment

SPLITS = ("train", "val")

# How the user writes each option of the fingerprint (the keys of shards/_config.json).
OPTION_FLAGS = {
    "lines": "--lines", "gray_share": "--gray-share", "equalize_share": "--equalize-share", "min_jitter": "--jitter",
    "hints": "--hints", "no_hint_share": "--no-hint-share", "artifacts": "--artifacts", "val_fraction": "--val",
    "max_samples": "--shard-samples", "max_bytes": "--shard-mb (in bytes)", "seed": "--seed",
    "histogram_images": "--histogram-images", "png_compression": "--png-compression",
    "artifacts_near_hints": "--artifacts-near-hints", "jpeg": "--jpeg", "jpeg_quality": "--jpeg-quality", "lean_train": "--lean-train",
}
# Members that may be stored as JPEG (dense pictures); hints (sparse, exact alpha) and palettes never are.
JPEG_MEMBERS = ("color", "line", "draft")
DEFAULT_JPEG_QUALITY = 95


@dataclass(frozen=True)
class ShardConfig:
    root: Path
    lines: LineAugment
    hints: tuple[str, ...] = ("patches",)
    no_hint_share: float = 0.0
    artifacts: tuple[str, ...] = ("paste", "warp", "spray")
    # Paste and spray errors centred on the sample's hint pixels (Xu's thesis sec. 5.2.2) instead of anywhere.
    artifacts_near_hints: bool = False
    val_fraction: float = 0.05
    max_samples: int = 1000
    max_bytes: int = 1 << 30
    seed: int = 0
    # Images (of the train split) the dataset-wide colour histogram is counted over, for `histogram` hints.
    histogram_images: int = 1000
    png_compression: int | None = None
    # Members stored as JPEG of `jpeg_quality` instead of PNG (lossy, several times faster to decode).
    jpeg: tuple[str, ...] = ()
    jpeg_quality: int = DEFAULT_JPEG_QUALITY
    # Train samples without hint and draft members: `pipe train --synth device` draws them per step.
    lean_train: bool = False
    workers: int = field(default_factory=default_workers)
    executor: str = "local"  # or "ray" (see pipeline.executors.ExecutorSpec)
    ray_address: str | None = None
    flush_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"--val must be in [0, 1), got {self.val_fraction}")
        if not 0 <= self.no_hint_share <= 1:
            raise ValueError(f"--no-hint-share must be in [0, 1], got {self.no_hint_share}")
        if self.max_samples < 1 or self.max_bytes < 1:
            raise ValueError("shard limits must be positive")
        if self.png_compression is not None and not 0 <= self.png_compression <= 9:
            raise ValueError(f"--png-compression must be 0..9, got {self.png_compression}")
        if not set(self.jpeg) <= set(JPEG_MEMBERS):
            raise ValueError(f"--jpeg: choose among {', '.join(JPEG_MEMBERS)} (hints stay PNG), got {','.join(self.jpeg)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality must be 1..100, got {self.jpeg_quality}")

    @property
    def with_palette(self) -> bool:
        return "palette" in self.hints

    def fingerprint(self) -> dict:
        """Everything that decides the shards' content: a resumed run must use the same values."""
        return {
            "lines": [list(pair) for pair in self.lines.weights],
            "gray_share": self.lines.gray_share,
            "equalize_share": self.lines.equalize_share,
            "min_jitter": self.lines.min_jitter,
            "hints": list(self.hints),
            "no_hint_share": self.no_hint_share,
            "artifacts": list(self.artifacts),
            "val_fraction": self.val_fraction,
            "max_samples": self.max_samples,
            "max_bytes": self.max_bytes,
            "seed": self.seed,
            "histogram_images": self.histogram_images if "histogram" in self.hints else None,
            "png_compression": self.png_compression,
            # Shards recorded before this option existed lack the key: no change (pipeline.recorded_options).
            "artifacts_near_hints": self.artifacts_near_hints,
            "jpeg": list(self.jpeg),
            "jpeg_quality": self.jpeg_quality if self.jpeg else None,
            "lean_train": self.lean_train,
        }

    def member_name(self, image: str) -> str:
        """The tar member extension image `image` is stored under: `color.jpg` or `color.png`."""
        return f"{image}.jpg" if image in self.jpeg else f"{image}.png"

    def fingerprint_json(self) -> str:
        return json.dumps(self.fingerprint(), sort_keys=True, indent=1) + "\n"
