"""`pipe shard --verify` (and `pipe verify`): re-read every file of a dataset's shard set and report what is wrong with each.

`verify_shard_set(root)` is the one entry point. It checks `shards/_config.json` (the recorded options),
the colour histogram if there is one (against the SHA-256 the done-markers record), and every file of each split folder: a finished shard's
done-marker (`_stats.json`) must parse and give the tar's size and SHA-256; its sidecar must read and
list the tar's samples in tar order, each with exactly the recorded members, sizes and digests; every
member must match its digest and decode (PNGs and JPEGs with the sample's size and the expected
channels, the palette array, the JSON naming its own key); the options each done-marker records must
be the recorded ones. Tars and sidecars without a done-marker, and files a shard set never holds, are
reported too. Nothing is raised for damaged content: each problem is a `ShardFinding` naming its file.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from manifests.layout import DatasetLayout
from manifests.shards import STATS_SUFFIX, ShardFileError, finished_shards, read_sidecar, shard_paths
from pipeline.recorded_options import DamagedRecord, option_changes, parse_digested_json, shown
from pipeline.shard.config import OPTION_FLAGS, SPLITS
from pipeline.shard.done_marker import HISTOGRAM_DIGEST, read_done_marker
from synth.hints.palette import BANDS, RANKS

# Channels each image member must decode to (PNG, or JPEG with `pipe shard --jpeg`).
IMAGE_CHANNELS = {"color.png": 3, "line.png": 1, "hint.png": 4, "draft.png": 3, "color.jpg": 3, "line.jpg": 1, "draft.jpg": 3}
HISTOGRAM_BINS = 512


@dataclass(frozen=True)
class ShardFinding:
    """One problem of one file; `path` is relative to the dataset root (`shards/train/00003.tar`)."""

    path: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class ShardSetReport:
    shards: int = 0
    samples: int = 0
    bytes: int = 0
    files: int = 0  # files looked at
    findings: list[ShardFinding] = field(default_factory=list)
    root: Path = Path(".")
    histogram_digests: set[str] = field(default_factory=set)  # what the done-markers record (histogram hints)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def problems(self) -> list[str]:
        return [str(finding) for finding in self.findings]

    def add(self, path: Path, problem: str) -> None:
        self.findings.append(ShardFinding(path.relative_to(self.root).as_posix(), problem))


def verify_shard_set(root: Path) -> ShardSetReport:
    """Check every file of ROOT/shards; FileNotFoundError when ROOT has no shards folder at all."""
    layout = DatasetLayout(root)
    if not layout.shards.is_dir():
        raise FileNotFoundError(f"no shards in {root}: run `pipe shard {root}` first")
    report = ShardSetReport(root=root)
    recorded = _check_recorded_options(layout.shard_config, report)
    known = {layout.shard_config, layout.shard_histogram, *(layout.shard_split(split) for split in SPLITS)}
    for path in sorted(layout.shards.iterdir()):
        if path not in known:
            report.add(path, "not part of a shard set (left by something else?)")
    for split in SPLITS:
        split_dir = layout.shard_split(split)
        if split_dir.is_dir():
            _check_split(split_dir, recorded, report)
    _check_histogram(layout.shard_histogram, report)  # after the done-markers: they record its digest
    return report


def _check_recorded_options(path: Path, report: ShardSetReport) -> dict | None:
    if not path.is_file():
        report.add(path, "missing: the options the shards were made with are not recorded")
        return None
    report.files += 1
    try:
        return parse_digested_json(path.read_bytes().decode())[0]
    except UnicodeDecodeError:
        problem = "not valid JSON (not text)"
    except DamagedRecord as exc:
        problem = "not a record of options (not a JSON object)" if str(exc) == "not a JSON object" else str(exc)
    report.add(path, problem)
    return None


def _check_histogram(path: Path, report: ShardSetReport) -> None:
    if not path.exists():
        return  # only `--hints histogram` counts one
    report.files += 1
    try:
        counts = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        report.add(path, f"not a NumPy array ({exc})")
        return
    if counts.shape != (HISTOGRAM_BINS,) or counts.dtype.kind not in "iu" or (counts < 0).any():
        report.add(path, f"not a {HISTOGRAM_BINS}-bin colour histogram ({counts.dtype} {counts.shape})")
    elif report.histogram_digests and _file_digest(path)[1] not in report.histogram_digests:
        report.add(path, "differs from the histogram the shards' done-markers record (SHA-256)")


def _check_split(split_dir: Path, recorded: dict | None, report: ShardSetReport) -> None:
    finished = set(finished_shards(split_dir))
    for path in sorted(split_dir.iterdir()):
        index = _shard_index(path.name)
        if index is None:
            report.add(path, "not a shard file (NNNNN.tar, NNNNN.parquet, NNNNN_stats.json)")
        elif index not in finished:
            report.add(path, "no done-marker (unfinished shard; run pipe shard again to finish it)")
    for index in sorted(finished):
        report.shards += 1
        _check_shard(split_dir, index, recorded, report)


def _shard_index(name: str) -> int | None:
    """The shard number of a shard file's name, or None for a name a shard set never holds."""
    for suffix in (".tar", ".parquet", STATS_SUFFIX):
        stem = name.removesuffix(suffix)
        if stem != name and stem.isdigit():
            return int(stem)
    return None


def _check_shard(split_dir: Path, index: int, recorded: dict | None, report: ShardSetReport) -> None:
    tar_path, sidecar_path, stats_path = shard_paths(split_dir, index)
    report.files += 1
    try:
        stats = read_done_marker(stats_path)
    except ShardFileError as exc:
        report.add(stats_path, str(exc).removeprefix(f"{stats_path}: "))
        stats = None
    if stats is not None and isinstance(stats.get(HISTOGRAM_DIGEST), str):
        report.histogram_digests.add(stats[HISTOGRAM_DIGEST])
    if stats is not None and recorded is not None and isinstance(stats.get("config"), dict):
        changes = option_changes(recorded, stats["config"])
        if changes:
            named = "; ".join(f"{OPTION_FLAGS.get(key, key)} {shown(new)}, recorded {shown(old)}" for key, old, new in changes)
            report.add(stats_path, f"made with other options than shards/_config.json records: {named}")
    rows = _sidecar_rows(sidecar_path, report)
    if rows is not None and stats is not None and len(rows) != stats["count"]:
        report.add(sidecar_path, f"{len(rows)} rows, the done-marker says {stats['count']}")
    if not tar_path.is_file():
        report.add(tar_path, "missing (the shard's done-marker exists)")
        return
    report.files += 1
    size, digest = _file_digest(tar_path)
    report.bytes += size
    if stats is not None and (size != stats["bytes"] or digest != stats["sha256"]):
        report.add(tar_path, f"size or SHA-256 differs from {stats_path.name}")
    _check_samples(tar_path, rows, report)


def _sidecar_rows(sidecar_path: Path, report: ShardSetReport) -> list[dict] | None:
    if not sidecar_path.is_file():
        report.add(sidecar_path, "missing (the shard's done-marker exists)")
        return None
    report.files += 1
    try:
        return read_sidecar(sidecar_path).to_pylist()
    except ShardFileError as exc:
        report.add(sidecar_path, str(exc).removeprefix(f"{sidecar_path}: "))
        return None


def _check_samples(tar_path: Path, rows: list[dict] | None, report: ShardSetReport) -> None:
    """Every sample of the tar against its sidecar row (in order), every member against its digest, then decoded."""
    keys: list[str] = []
    expected_rows = iter(rows or [])
    try:
        for key, members in _samples(tar_path):
            keys.append(key)
            report.samples += 1
            row = next(expected_rows, None)
            if rows is None or row is None or row["key"] != key:
                continue  # the key lists are compared below
            for problem in _member_problems(key, members, row):
                report.add(tar_path, problem)
    except (tarfile.TarError, OSError, EOFError) as exc:
        report.add(tar_path, f"not a readable tar after {len(keys)} samples ({exc})")
        return
    if len(set(keys)) != len(keys):
        report.add(tar_path, "duplicate keys")
    if rows is not None and keys != [row["key"] for row in rows]:
        report.add(tar_path, f"keys differ from the sidecar's (tar {len(keys)}, sidecar {len(rows)})")


def _member_problems(key: str, members: dict[str, bytes], row: dict) -> Iterator[str]:
    digests = row.get("member_sha256") or [None] * len(row["members"])
    expected = dict(zip(row["members"], zip(row["member_bytes"], digests)))
    if sorted(members) != sorted(expected):
        yield f"{key} has members {sorted(members)}, sidecar lists {sorted(expected)}"
        return
    for ext, payload in members.items():
        size, digest = expected[ext]
        if len(payload) != size or (digest is not None and hashlib.sha256(payload).hexdigest() != digest):
            yield f"{key}.{ext} differs from its sidecar digest"
        elif problem := decode_problem(key, ext, payload, members):
            yield f"{key}.{ext}: {problem}"


def _file_digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample in tar order, one sample in memory at a time; a key is the
    member name up to its first dot."""
    key, members = None, {}
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            name, _, ext = member.name.partition(".")
            handle = tar.extractfile(member)
            if key is not None and name != key:
                yield key, members
                members = {}
            key = name
            members[ext] = handle.read() if handle else b""
    if key is not None:
        yield key, members


def decode_problem(key: str, ext: str, payload: bytes, members: dict[str, bytes]) -> str:
    """Why a member does not decode as it should, or "" when it does."""
    if ext in IMAGE_CHANNELS:
        image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            return f"{ext.rpartition('.')[2].upper()} does not decode"
        channels = 1 if image.ndim == 2 else image.shape[2]
        if channels != IMAGE_CHANNELS[ext]:
            return f"{channels} channels, expected {IMAGE_CHANNELS[ext]}"
        meta = _json_or_none(members.get("json"))
        if meta and list(image.shape[:2]) != meta.get("size"):
            return f"size {image.shape[:2]}, JSON says {meta.get('size')}"
        return ""
    if ext == "palette.npy":
        try:
            array = np.load(io.BytesIO(payload), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            return f"not a NumPy array ({exc})"
        shape = (BANDS, RANKS, 3)
        return "" if array.dtype == np.uint8 and array.shape == shape else f"palette of {array.dtype} {array.shape}, expected uint8 {shape}"
    if ext == "json":
        meta = _json_or_none(payload)
        if meta is None:
            return "invalid JSON (not an object)"
        return "" if meta.get("key") == key else f"JSON names key {meta.get('key')!r}"
    return "unexpected member"


def _json_or_none(payload: bytes | None) -> dict | None:
    try:
        value = json.loads(payload) if payload is not None else None
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None
