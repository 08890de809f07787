"""`pipe shard --verify`: re-read every shard and check it against its sidecar and done-marker.

For each finished shard: the tar's size and SHA-256 equal the done-marker's; its samples are the
sidecar's keys in the sidecar's order, each with exactly the recorded members, sizes and digests; and
every member decodes (PNGs and JPEGs with the sample's size and the expected channels, the palette array, the
JSON naming its own key). Shard files without a done-marker are reported as unfinished.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq

from pipeline.shard.config import SPLITS
from manifests.shards import finished_shards, shard_paths
from synth.hints.palette import BANDS, RANKS

# Channels each image member must decode to (PNG, or JPEG with `pipe shard --jpeg`).
IMAGE_CHANNELS = {"color.png": 3, "line.png": 1, "hint.png": 4, "draft.png": 3, "color.jpg": 3, "line.jpg": 1, "draft.jpg": 3}


@dataclass
class VerifyReport:
    shards: int = 0
    samples: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_shards(folder: Path) -> VerifyReport:
    report = VerifyReport()
    for split in SPLITS:
        split_dir = folder / split
        if not split_dir.is_dir():
            continue
        finished = finished_shards(split_dir)
        for path in sorted(split_dir.glob("*.tar")):
            if not path.stem.isdigit() or int(path.stem) not in finished:
                report.problems.append(f"{split}/{path.name}: no done-marker (unfinished shard; re-run pipe shard)")
        for index in finished:
            report.shards += 1
            _verify_one(split_dir, split, index, report)
    return report


def _verify_one(split_dir: Path, split: str, index: int, report: VerifyReport) -> None:
    tar_path, sidecar_path, stats_path = shard_paths(split_dir, index)
    name = f"{split}/{tar_path.name}"
    problems = report.problems
    if not tar_path.exists() or not sidecar_path.exists():
        problems.append(f"{name}: tar or sidecar missing")
        return
    stats = json.loads(stats_path.read_text())
    size, digest = _file_digest(tar_path)
    report.bytes += size
    if size != stats["bytes"] or digest != stats["sha256"]:
        problems.append(f"{name}: size or SHA-256 differs from {stats_path.name}")
    rows = pq.read_table(sidecar_path).to_pylist()
    if len(rows) != stats["count"]:
        problems.append(f"{name}: sidecar has {len(rows)} rows, done-marker says {stats['count']}")
    try:
        samples = _read_samples(tar_path)
    except tarfile.TarError as exc:
        problems.append(f"{name}: not a readable tar ({exc})")
        return
    keys = [key for key, _ in samples]
    if keys != [row["key"] for row in rows]:
        problems.append(f"{name}: keys differ from the sidecar's (tar {len(keys)}, sidecar {len(rows)})")
    if len(set(keys)) != len(keys):
        problems.append(f"{name}: duplicate keys")
    for (key, members), row in zip(samples, rows):
        report.samples += 1
        expected = dict(zip(row["members"], zip(row["member_bytes"], row["member_sha256"])))
        if sorted(members) != sorted(expected):
            problems.append(f"{name}: {key} has members {sorted(members)}, sidecar lists {sorted(expected)}")
            continue
        for ext, payload in members.items():
            size, digest = expected[ext]
            if len(payload) != size or hashlib.sha256(payload).hexdigest() != digest:
                problems.append(f"{name}: {key}.{ext} differs from its sidecar digest")
            else:
                problem = decode_problem(key, ext, payload, members)
                if problem:
                    problems.append(f"{name}: {key}.{ext}: {problem}")


def _file_digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _read_samples(path: Path) -> list[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample in tar order; a key is the member name up to its first dot.

    Holds one shard's samples in memory at a time (about the shard's size).
    """
    samples: list[tuple[str, dict[str, bytes]]] = []
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            key, _, ext = member.name.partition(".")
            handle = tar.extractfile(member)
            payload = handle.read() if handle else b""
            if not samples or samples[-1][0] != key:
                samples.append((key, {}))
            samples[-1][1][ext] = payload
    return samples


def decode_problem(key: str, ext: str, payload: bytes, members: dict[str, bytes]) -> str:
    """Why a member does not decode as it should, or "" when it does."""
    if ext in IMAGE_CHANNELS:
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            return f"{ext.rpartition('.')[2].upper()} does not decode"
        channels = 1 if image.ndim == 2 else image.shape[2]
        if channels != IMAGE_CHANNELS[ext]:
            return f"{channels} channels, expected {IMAGE_CHANNELS[ext]}"
        meta = json.loads(members["json"]) if "json" in members else None
        if meta and list(image.shape[:2]) != meta["size"]:
            return f"size {image.shape[:2]}, JSON says {meta['size']}"
        return ""
    if ext == "palette.npy":
        try:
            array = np.load(io.BytesIO(payload), allow_pickle=False)
        except ValueError as exc:
            return f"not a NumPy array ({exc})"
        shape = (BANDS, RANKS, 3)
        return "" if array.dtype == np.uint8 and array.shape == shape else f"palette of {array.dtype} {array.shape}, expected uint8 {shape}"
    if ext == "json":
        try:
            meta = json.loads(payload)
        except ValueError as exc:
            return f"invalid JSON ({exc})"
        return "" if meta.get("key") == key else f"JSON names key {meta.get('key')!r}"
    return "unexpected member"
