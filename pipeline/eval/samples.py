"""Which samples of a split `pipe eval` scores, and the loader that decodes them in worker processes.

Every sample has a position: its place in the split's shard order (shards by name, samples in tar
order, as the shard sidecars list them). `--limit N` keeps positions 0..N-1, and each loader worker
decodes the positions congruent to its id modulo the worker count. Batches arrive in whatever order
the workers finish; eval files every score under its sample's position and reduces them in position
order, so the report does not depend on the number of workers.

No sample is dropped silently: one whose members are missing, differ from the digests its shard's
sidecar records (a damaged shard, whose wrong bytes may still decode), or do not decode comes through the
loader as an `Unscored` record (filed by its key, so by its position too), and a position the shards
never yielded at all (a tar read error, a key the sidecar lists but the tar lacks) is named after the
pass by `unscored_samples`. With line sources read from the dataset root (`--lines real,xdog`), the
workers also read each sample's line of every such method; a sample without one is still scored for
the other sources, and named for that source (`no_lines`, or why its file could not be read).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import webdataset as wds

from manifests.reasons import DECODE_ERROR, MISSING_FROM_SHARD, MISSING_MEMBER, NO_LINES
from manifests.shards import split_keys
from pipeline.eval.lines import no_lines_detail, read_root_line
from train.loader import LoaderConfig, collate_samples, decode_sample, members_of, shard_urls
from train.member_check import DamagedMember, MemberCheck


def sample_positions(folder: Path, limit: int | None = None) -> dict[str, int]:
    """Key -> position for the samples to score: all of the split, or its first `limit`."""
    keys = split_keys(folder)
    return {key: position for position, key in enumerate(keys[:limit] if limit else keys)}


class WorkerShare:
    """Keeps the samples that are scored and fall to this loader worker (position mod workers)."""

    def __init__(self, positions: dict[str, int]) -> None:
        self.positions = positions

    def __call__(self, sample: dict[str, Any]) -> bool:
        position = self.positions.get(sample["__key__"])
        if position is None:
            return False
        info = torch.utils.data.get_worker_info()
        return info is None or position % info.num_workers == info.id


@dataclass(frozen=True)
class Unscored:
    """A sample of the split that eval could not score, and why."""

    key: str
    reason: str  # one of the reason codes above
    detail: str


class DecodeOrReport:
    """decode_sample, with a sample that lacks a needed member or fails to decode turned into an
    `Unscored` record naming the member and the error, instead of an exception."""

    def __init__(self, members: tuple[str, ...]) -> None:
        self.members = members  # what every sample needs: an image name (`color`: its PNG or JPEG member) or a member
        self.check = MemberCheck()

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any] | Unscored:
        key = sample["__key__"]
        absent = [_shown(member) for member in self.members if not any(m in sample for m in members_of(member) or (member,))]
        if absent:
            return Unscored(key, MISSING_MEMBER, f"{', '.join(absent)} not in the shard")
        try:
            self.check(sample)  # wrong bytes may still decode, to wrong pixels: never score them
        except DamagedMember as exc:
            return Unscored(key, DECODE_ERROR, f"{exc.member}: differs from the SHA-256 recorded in {Path(exc.shard).with_suffix('.parquet').name} (damaged shard)")
        try:
            return decode_sample(sample)
        except Exception as exc:  # noqa: BLE001 - whatever the member holds, the sample is reported, not lost
            return Unscored(key, DECODE_ERROR, _decode_error_detail(sample, exc))


def _shown(member: str) -> str:
    """A needed image as the report names it: `color.png or color.jpg`."""
    return " or ".join(members_of(member)) or member


def _decode_error_detail(sample: dict[str, Any], error: Exception) -> str:
    """`member: error` for the first member that fails to decode on its own."""
    key = sample["__key__"]
    for member in sorted(name for name in sample if not name.startswith("__")):
        try:
            decode_sample({"__key__": key, member: sample[member]})
        except Exception as exc:  # noqa: BLE001
            return f"{member}: {str(exc).removeprefix(f'{key}.{member} ') or type(exc).__name__}"
    return f"{type(error).__name__}: {error}"


class AttachRootLines:
    """Adds "root_lines" to a decoded sample: {method: uint8 (1, H, W) line art at the colour's size,
    or an `Unscored` record when the dataset root has no readable line of that method for the key}."""

    def __init__(self, root: Path, paths: dict[str, dict[str, str]]) -> None:
        self.root = root
        self.paths = paths  # method -> key -> line path relative to root (pipeline.eval.lines.root_line_paths)

    def __call__(self, sample: dict[str, Any] | Unscored) -> dict[str, Any] | Unscored:
        if isinstance(sample, Unscored):
            return sample
        key, (height, width) = sample["__key__"], sample["color"].shape[-2:]
        lines: dict[str, Any] = {}
        for method, paths in self.paths.items():
            relative = paths.get(key)
            line = read_root_line(self.root, relative, height, width) if relative is not None else (NO_LINES, no_lines_detail(method))
            lines[method] = Unscored(key, *line) if isinstance(line, tuple) else line
        return {**sample, "root_lines": lines}


def batch_reporting_unscored(source: Iterable[dict[str, Any] | Unscored], batch_size: int) -> Iterator[dict[str, Any]]:
    """Batches of `batch_size` decoded samples (the last may be smaller), as `wds.batched` makes them,
    each with the `Unscored` records met since the previous batch under "unscored"; records left at the
    end come in a batch with no samples."""
    samples: list[dict[str, Any]] = []
    unscored: list[Unscored] = []
    for item in source:
        if isinstance(item, Unscored):
            unscored.append(item)
            continue
        samples.append(item)
        if len(samples) == batch_size:
            yield {**_collate(samples), "unscored": unscored}
            samples, unscored = [], []
    if samples or unscored:
        yield {**(_collate(samples) if samples else {"__key__": [], "meta": []}), "unscored": unscored}


def _collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """collate_samples, with each sample's root lines (if any) kept as a list of per-sample dicts."""
    batch = collate_samples(samples)
    if any("root_lines" in sample for sample in samples):
        batch["root_lines"] = [sample.get("root_lines", {}) for sample in samples]
    return batch


def unscored_samples(positions: dict[str, int], scored: Collection[int], failed: dict[int, Unscored]) -> list[Unscored]:
    """Every sample in `positions` that was not scored, in position order: its loader failure, or
    `missing_from_shard` when the loader never yielded it at all."""
    never_read = "the shard's sidecar lists it, but reading the tar did not yield it"
    return [failed.get(position) or Unscored(key, MISSING_FROM_SHARD, never_read)
            for key, position in sorted(positions.items(), key=lambda item: item[1]) if position not in scored]


def eval_loader(folder: Path, positions: dict[str, int], batch_size: int, workers: int, images: tuple[str, ...], with_palette: bool,
                root_lines: AttachRootLines | None = None) -> wds.WebLoader:
    """Batches (uint8 tensors, keys, and the "unscored" records of samples that failed to decode) of the
    samples in `positions`; each worker reads every shard and decodes only its share, so a split in one
    shard still spreads over all workers. With `root_lines` each decoded sample also carries, under
    "root_lines", every root line source's line art at its colour's size (or why it has none)."""
    members = LoaderConfig(shards=(str(folder),), images=images, with_palette=with_palette)
    needed = tuple(images) + (("palette.npy",) if with_palette else ())
    dataset = wds.DataPipeline(
        wds.SimpleShardList(shard_urls(str(folder))),
        wds.tarfile_to_samples(handler=wds.warn_and_continue, select_files=members.wanted),
        wds.select(WorkerShare(positions)),
        wds.map(DecodeOrReport(needed)),
        *([wds.map(root_lines)] if root_lines is not None else []),
        functools.partial(batch_reporting_unscored, batch_size=batch_size),
    )
    return wds.WebLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=4 if workers > 0 else None)
