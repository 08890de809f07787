"""The streaming loader: WebDataset shards from `pipe shard` -> batches of tensors for the trainers.

Worker processes read tars, decode PNG and JPEG members with OpenCV and stack uint8 batches (a
quarter of the bytes of float batches through the DataLoader's shared memory); with `decode_size`
they decode dense members at a reduced scale close to the training size (JPEG straight from the
DCT); with `jpeg_on_device` they leave JPEG members to torchvision's nvjpeg on the GPU.
Every member is checked against the digest its shard's sidecar records before it is decoded
(train.member_check): a damaged sample is skipped with one warning line naming its shard and key.
`to_device` moves a batch and converts it to float in [0, 1] there. Under DDP each rank reads its own shards (node splitting); with
`repeat=True` it cycles them for `epoch_samples` per epoch, so every rank takes the same number of
steps on disjoint samples; `resampled=True` instead draws shards with replacement.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import itertools
import json
import logging
import os
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from typing import Any

import braceexpand
import cv2
import numpy as np
import torch
import webdataset as wds

from manifests.images import decode_rgb
from manifests.shards import finished_tars
from train.jpeg_device import decode_jpegs
from train.member_check import MemberCheck, SkipDamaged
from train.worker_signals import ignore_stop_signals
from synth.hints.palette import render_palette

log = logging.getLogger(__name__)

# Member -> (tensor name, OpenCV colour conversion applied after decoding). Colour, line and draft
# may be stored as PNG or JPEG (`pipe shard --jpeg`); hints are always PNG (exact, sparse alpha).
IMAGE_MEMBERS = {
    "color.png": ("color", cv2.COLOR_BGR2RGB),
    "color.jpg": ("color", cv2.COLOR_BGR2RGB),
    "line.png": ("line", None),
    "line.jpg": ("line", None),
    "hint.png": ("hint", cv2.COLOR_BGRA2RGBA),
    "draft.png": ("draft", cv2.COLOR_BGR2RGB),
    "draft.jpg": ("draft", cv2.COLOR_BGR2RGB),
}
IMAGE_NAMES = ("color", "line", "hint", "draft")
# Dense pictures (area-averaged when shrunk, so they may be decoded at a reduced scale); the hint is sparse.
DENSE_NAMES = ("color", "line", "draft")
# OpenCV's reduced-scale decoding flags (JPEG decodes straight to 1/2, 1/4 or 1/8 in the DCT).
REDUCED_FLAGS = {
    (2, 3): cv2.IMREAD_REDUCED_COLOR_2, (4, 3): cv2.IMREAD_REDUCED_COLOR_4, (8, 3): cv2.IMREAD_REDUCED_COLOR_8,
    (2, 1): cv2.IMREAD_REDUCED_GRAYSCALE_2, (4, 1): cv2.IMREAD_REDUCED_GRAYSCALE_4, (8, 1): cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
CHANNELS = {"color": 3, "line": 1, "hint": 4, "draft": 3}


def members_of(name: str) -> tuple[str, ...]:
    """The tar members that may hold image `name` (`color` -> color.png, color.jpg)."""
    return tuple(member for member, (image, _) in IMAGE_MEMBERS.items() if image == name)


def decode_scale(size: tuple[int, int], decode_size: int | None) -> int:
    """The largest reduction (1, 2, 4 or 8) that keeps both sides of an image of `size` at least
    `decode_size` (sides round up, as reduced JPEG decoding rounds them)."""
    if not decode_size:
        return 1
    for scale in (8, 4, 2):
        if min(-(-side // scale) for side in size) >= decode_size:
            return scale
    return 1


def decode_image(data: bytes, member: str, scale: int = 1) -> np.ndarray:
    """One image member -> uint8 array as the trainers use it (RGB, grey or RGBA), dense members at
    1/`scale` of their size: JPEG through reduced-scale decoding, PNG decoded whole, then area-resized."""
    name, conversion = IMAGE_MEMBERS[member]
    buffer = np.frombuffer(data, np.uint8)
    reduce = scale if name in DENSE_NAMES else 1
    if member.endswith(".jpg"):
        flag = REDUCED_FLAGS[(reduce, CHANNELS[name])] if reduce > 1 else (cv2.IMREAD_COLOR if CHANNELS[name] == 3 else cv2.IMREAD_GRAYSCALE)
        image, reduce = cv2.imdecode(buffer, flag), 1
    elif CHANNELS[name] == 3:  # colour and draft PNGs: straight to RGB (libspng where installed)
        image, conversion = decode_rgb(buffer), None
    else:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{member} does not decode")
    if reduce > 1:
        height, width = image.shape[:2]
        image = cv2.resize(image, (-(-width // reduce), -(-height // reduce)), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, conversion) if conversion is not None else image


@dataclass(frozen=True)
class LoaderConfig:
    """How to stream shards. `shards`: a folder (its finished shards), a glob, a brace pattern
    (`shards/train/{00000..00099}.tar`), a URL WebDataset can open (`pipe:`, `http://`), or several."""

    shards: tuple[str, ...]
    batch_size: int = 16
    workers: int = 2
    shuffle_buffer: int = 1000  # samples; 0 keeps shard order (evaluation)
    shuffle_shards: bool = True
    resampled: bool = False  # draw shards with replacement, endlessly: use with epoch_samples
    # Cycle through this rank's own shards endlessly: disjoint samples per rank and, with
    # epoch_samples, the same number of steps on every rank (what DDP needs).
    repeat: bool = False
    epoch_samples: int | None = None  # per rank; with resampled or repeat, what one "epoch" means
    # With repeat: batches this rank already took (a resumed run's position); they are read, not decoded.
    skip_batches: int = 0
    partial_batches: bool = True
    seed: int = 0
    with_palette: bool = False
    # Image members to read and decode: a recipe that reads no hint or draft skips those decodes.
    images: tuple[str, ...] = ("color", "line", "hint", "draft")
    # Decode colour, line and draft at the largest reduction (1/2, 1/4, 1/8) that keeps them at least
    # this many pixels a side (JPEG members straight from the DCT; PNG ones decoded, then area-resized).
    # None decodes them whole. A trainer that crops must not set it (crops are taken at full size).
    decode_size: int | None = None
    # JPEG members are passed on undecoded (uint8 byte tensors under "<name>_jpeg") for `to_device` to
    # decode on the GPU with torchvision's nvjpeg path (`jpeg_on_device`).
    jpeg_on_device: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.workers < 0:
            raise ValueError("batch_size must be >= 1 and workers >= 0")
        if "color" not in self.images or not set(self.images) <= set(IMAGE_NAMES):
            raise ValueError(f"images must include color and be among {', '.join(sorted(IMAGE_NAMES))}, got {self.images}")
        if self.decode_size is not None and self.decode_size < 1:
            raise ValueError(f"decode_size must be positive, got {self.decode_size}")
        if (self.resampled or self.repeat) and not self.epoch_samples:
            raise ValueError("resampled or repeated loading never ends by itself: give epoch_samples")
        if self.skip_batches and not self.repeat:
            raise ValueError("skip_batches needs repeat=True (the reproducible endless stream)")
        if self.resampled and self.repeat:
            raise ValueError("choose resampled (shards drawn at random) or repeat (each rank cycles its own shards), not both")

    def wanted(self, member_name: str) -> bool:
        """Whether a tar member (`<key>.<ext>`) is read at all: unwanted ones are skipped unread."""
        ext = member_name.partition(".")[2]
        if ext in IMAGE_MEMBERS:
            return IMAGE_MEMBERS[ext][0] in self.images
        return ext == "json" or (ext == "palette.npy" and self.with_palette)


def shard_urls(specs: tuple[str, ...] | list[str] | str) -> list[str]:
    """Expand folders, globs and brace patterns to a sorted list of shard paths or URLs."""
    urls: list[str] = []
    for spec in [specs] if isinstance(specs, str) else specs:
        path = Path(spec)
        if "://" in spec or spec.startswith("pipe:"):
            urls += list(braceexpand.braceexpand(spec))
        elif path.is_dir():
            # Only finished shards: a tar without its done-marker may be from a run in progress.
            urls += [str(p) for p in finished_tars(path)]
        elif any(ch in spec for ch in "*?["):
            urls += sorted(glob(spec))
        else:
            urls += list(braceexpand.braceexpand(spec))
    if not urls:
        raise FileNotFoundError(f"no shards found in {specs}: run `pipe shard ROOT` first")
    return urls


def decode_sample(sample: dict[str, Any], decode_size: int | None = None, jpeg_on_device: bool = False) -> dict[str, Any]:
    """Raw tar members -> uint8 CHW arrays (colour RGB, line grey, hint RGBA, draft RGB), JSON, palette.

    With `decode_size`, dense members come at the reduction `decode_scale` picks from the sample's
    recorded size; with `jpeg_on_device`, JPEG members stay bytes (`<name>_jpeg`) for the device."""
    out: dict[str, Any] = {"__key__": sample["__key__"]}
    if "json" in sample:
        out["meta"] = json.loads(sample["json"])
    size = out.get("meta", {}).get("size")
    scale = decode_scale(tuple(size), decode_size) if size else 1
    for member in IMAGE_MEMBERS:
        if member not in sample:
            continue
        name = IMAGE_MEMBERS[member][0]
        if jpeg_on_device and member.endswith(".jpg"):
            out[f"{name}_jpeg"] = np.frombuffer(sample[member], np.uint8)
            continue
        try:
            image = decode_image(sample[member], member, scale)
        except ValueError:
            raise ValueError(f"{sample['__key__']}.{member} does not decode") from None
        out[name] = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    if "palette.npy" in sample:
        out["palette"] = np.load(io.BytesIO(sample["palette.npy"]), allow_pickle=False)
    return out


def collate_samples(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """One batch: uint8 tensors (B, C, H, W) per image member, keys and metadata as lists."""
    batch: dict[str, Any] = {"__key__": [s["__key__"] for s in samples], "meta": [s.get("meta", {}) for s in samples]}
    for name in ("color", "line", "hint", "draft", "palette"):
        if all(name in s for s in samples):
            batch[name] = torch.from_numpy(np.stack([s[name] for s in samples]))
        if all(f"{name}_jpeg" in s for s in samples):
            batch[f"{name}_jpeg"] = [torch.from_numpy(s[f"{name}_jpeg"].copy()) for s in samples]
    return batch


def cycle_shards(source: Iterable[dict[str, Any]], seed: int) -> Iterator[dict[str, Any]]:
    """This worker's shards over and over, reshuffled each pass from (seed, pass): an endless, reproducible stream."""
    shards = list(source)
    if not shards:
        return
    for cycle in itertools.count():
        order = list(shards)
        random.Random(f"{seed}/{cycle}").shuffle(order)
        yield from order


def _stream_index(worker: int, workers: int, resumed_batches: int) -> int:
    """Which worker's stream a (resumed) worker carries on.

    A DataLoader takes batch k from worker k mod W, and a new one starts again at worker 0; so after
    `resumed_batches` batches, new worker w must carry the stream of old worker (w + batches) mod W.
    """
    return (worker + resumed_batches) % workers if workers > 0 else 0


def split_by_stream(source: Iterable[dict[str, Any]], resumed_batches: int) -> Iterator[dict[str, Any]]:
    """split_by_worker, with the worker-to-shards assignment rotated to match a resumed position."""
    info = torch.utils.data.get_worker_info()
    if info is None:
        yield from source
        return
    yield from itertools.islice(source, _stream_index(info.id, info.num_workers, resumed_batches), None, info.num_workers)


def skip_samples(source: Iterable[dict[str, Any]], resumed_batches: int, batch_size: int) -> Iterator[dict[str, Any]]:
    """Drop the samples of the first `resumed_batches` batches from this worker's stream (read, not
    decoded): how a resumed run catches up with the position it stopped at."""
    info = torch.utils.data.get_worker_info()
    workers = info.num_workers if info is not None else 0
    stream = _stream_index(info.id, workers, resumed_batches) if info is not None else 0
    count = samples_to_skip(resumed_batches, batch_size, workers)[stream]
    yield from itertools.islice(source, count, None)


def samples_to_skip(batches: int, batch_size: int, workers: int) -> tuple[int, ...]:
    """Per worker stream, the samples behind the first `batches` batches (batch k is stream k mod workers's)."""
    if workers <= 0:
        return (batches * batch_size,)
    return tuple(len(range(stream, batches, workers)) * batch_size for stream in range(workers))


def make_dataset(config: LoaderConfig) -> wds.DataPipeline:
    urls = shard_urls(config.shards)
    stages: list[Any] = []
    if config.resampled:
        stages.append(wds.ResampledShards(urls, seed=config.seed, deterministic=True))
    else:
        stages += [wds.SimpleShardList(urls), wds.split_by_node, functools.partial(split_by_stream, resumed_batches=config.skip_batches)]
        if config.repeat:
            stages.append(functools.partial(cycle_shards, seed=config.seed))
        elif config.shuffle_shards:
            # A new shard order each epoch, from the seed and the epoch number.
            stages.append(wds.detshuffle(len(urls), initial=len(urls), seed=config.seed))
    stages.append(wds.tarfile_to_samples(handler=wds.warn_and_continue, select_files=config.wanted))
    # Before the shuffle, while samples still come shard by shard (one sidecar's digests at a time).
    stages.append(wds.map(MemberCheck(), handler=SkipDamaged(wds.warn_and_continue)))
    if config.shuffle_buffer > 0:
        # Endless streams shuffle from the seed (reproducible, so a resumed run sees the same
        # samples); finite epochs shuffle differently every time.
        seed = config.seed if config.repeat else None
        stages.append(wds.shuffle(config.shuffle_buffer, initial=min(100, config.shuffle_buffer), seed=seed))
    if config.skip_batches:
        stages.append(functools.partial(skip_samples, resumed_batches=config.skip_batches, batch_size=config.batch_size))
    stages.append(wds.map(functools.partial(decode_sample, decode_size=config.decode_size, jpeg_on_device=config.jpeg_on_device), handler=wds.warn_and_continue))
    # Endless streams never end a batch early, so every batch (and every rank's step) is full.
    stages.append(wds.batched(config.batch_size, collation_fn=collate_samples, partial=config.partial_batches and not config.repeat))
    return wds.DataPipeline(*stages)


class EndlessEpochs:
    """Epochs cut from one endless stream: each `iter()` continues where the previous epoch stopped.

    (Restarting a DataLoader's iteration would restart its workers' streams from the beginning.)
    """

    def __init__(self, loader: wds.WebLoader, batches_per_epoch: int) -> None:
        self.loader, self.batches_per_epoch = loader, batches_per_epoch
        self._stream: Iterator | None = None

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if self._stream is None:
            self._stream = iter(self.loader)
        return itertools.islice(self._stream, self.batches_per_epoch)


def rank_and_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def usable_workers(config: LoaderConfig) -> int:
    """Endless streams need a shard for every worker (a DataLoader waits on each in turn): fewer
    workers when this rank has fewer shards than that."""
    if not config.repeat or config.workers == 0:
        return config.workers
    rank, world = rank_and_world()
    shards = len(shard_urls(config.shards)[rank::world])
    if shards == 0:
        raise ValueError(f"rank {rank} of {world} gets no shard: make more shards (pipe shard --shard-samples) or use fewer processes")
    if shards < config.workers:
        log.warning("only %d shard(s) for this rank: using %d loader workers instead of %d", shards, shards, config.workers)
    return min(config.workers, shards)


def make_loader(config: LoaderConfig) -> wds.WebLoader | EndlessEpochs:
    """Batches from worker processes; with epoch_samples, each epoch yields that many samples' batches."""
    config = dataclasses.replace(config, workers=usable_workers(config))
    loader = wds.WebLoader(
        make_dataset(config),
        batch_size=None,
        num_workers=config.workers,
        persistent_workers=config.workers > 0,
        prefetch_factor=4 if config.workers > 0 else None,
        worker_init_fn=ignore_stop_signals,  # a signal to the process group: the parent saves, then stops them
        # The DataLoader draws its workers' base seed from this, not from the global generator, so
        # starting a loader never shifts the training run's random stream (dropout, label flips).
        generator=torch.Generator().manual_seed(config.seed),
    )
    if not config.epoch_samples:
        return loader
    batches = max(1, config.epoch_samples // config.batch_size)
    return EndlessEpochs(loader, batches) if config.repeat else loader.with_epoch(batches)


def to_device(batch: dict[str, Any], device: torch.device | str, non_blocking: bool = True) -> dict[str, Any]:
    """Move a batch to `device` and convert images to float in [0, 1] there (palette: 12 channels)."""
    out: dict[str, Any] = {k: v for k, v in batch.items() if not isinstance(v, torch.Tensor) and not k.endswith("_jpeg")}
    for name in IMAGE_NAMES:
        if name in batch:
            out[name] = batch[name].to(device, non_blocking=non_blocking).float().div_(255.0)
        elif f"{name}_jpeg" in batch:
            out[name] = decode_jpegs(batch[f"{name}_jpeg"], CHANNELS[name], device).float().div_(255.0)
    if "palette" in batch:
        colors = batch["palette"].to(device, non_blocking=non_blocking)
        height, width = batch["color"].shape[-2:]
        out["palette"] = render_palette(colors, height, width).float().div_(255.0)
    return out


def device_batches(loader: Iterable[dict[str, Any]], device: torch.device | str) -> Iterator[dict[str, Any]]:
    """What a training loop iterates: batches on `device` as floats in [0, 1]."""
    for batch in loader:
        yield to_device(batch, device)
