"""What `pipe shard` has to pack: every ok prepared image with the line art extracted for it, by split."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from manifests.ledger import Ledger
from manifests.schema import LINES, STATUS_OK
from pipeline.errors import PipeError
from pipeline.extract.plan import prepared_images
from pipeline.importing.splits import kept_splits
from pipeline.shard.config import ShardConfig


@dataclass(frozen=True)
class ShardJob:
    """One sample to synthesize: its prepared image and the line art available for it."""

    key: str
    split: str
    color_path: str  # relative to the dataset root
    # (method, path relative to the root, extraction params JSON) of each ok line image.
    lines: tuple[tuple[str, str, str], ...]


def _split_draw(key: str) -> float:
    """The key's place in [0, 1): keys under --val go to val."""
    digest = hashlib.sha256(f"split\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(key: str, val_fraction: float) -> str:
    """`val` for a fixed share of keys, decided by a hash of the key: stable as the dataset grows.
    (Imported pairs whose source had train/ and val/ folders keep that split instead: `plan_shard`.)"""
    return "val" if _split_draw(key) < val_fraction else "train"


def val_share_for(keys: list[str], count: int) -> float | None:
    """The smallest --val (rounded up to hundredths) that puts `count` of `keys` in val; None if there are too few keys."""
    draws = sorted(_split_draw(key) for key in keys)
    if len(draws) < count:
        return None
    return min(0.99, math.floor(draws[count - 1] * 100 + 1) / 100)


def extracted_lines(root: Path, methods: set[str]) -> dict[str, list[tuple[str, str, str]]]:
    """key -> [(method, path, params)] of the ok rows of lines.parquet for `methods`."""
    ledger = Ledger(root, LINES)
    if not ledger.exists():
        return {}
    table = ledger.read(columns=["status", "method", "path", "params"])
    table = table.filter(pc.and_(pc.equal(table["status"], STATUS_OK), pc.is_in(table["method"], pa.array(sorted(methods), pa.string()))))
    by_key: dict[str, list[tuple[str, str, str]]] = {}
    for key, method, path, params in zip(*(table[c].to_pylist() for c in ("key", "method", "path", "params"))):
        by_key.setdefault(key, []).append((method, path, params or "{}"))
    return by_key


def plan_shard(config: ShardConfig) -> list[ShardJob]:
    """Every ok prepared image as a job, in key order (the order samples are packed in)."""
    images = prepared_images(config.root)
    if not images:
        raise PipeError(f"no prepared images in {config.root}: run `pipe prepare SOURCE {config.root}` first")
    methods = {name for name, _ in config.lines.weights}
    lines = extracted_lines(config.root, methods)
    if not lines and config.lines.gray_share == 0:
        raise PipeError(
            f"no line art for {', '.join(sorted(methods))} in {config.root}: run `pipe extract {config.root} --method {','.join(sorted(methods))}` first"
        )
    kept = kept_splits(config.root)  # an imported paired set's own train/val split wins over the hash
    return [ShardJob(key, kept.get(key) or split_of(key, config.val_fraction), path, tuple(sorted(lines.get(key, [])))) for key, path in images]


def extracted_methods(root: Path) -> list[str]:
    """Line methods with at least one ok row in ROOT/lines.parquet."""
    ledger = Ledger(root, LINES)
    if not ledger.exists():
        return []
    table = ledger.read(columns=["status", "method"])
    return sorted(set(table.filter(pc.equal(table["status"], STATUS_OK))["method"].to_pylist()))
