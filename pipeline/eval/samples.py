"""Which samples of a split `pipe eval` scores, and the loader that decodes them in worker processes.

Every sample has a position: its place in the split's shard order (shards by name, samples in tar
order, as the shard sidecars list them). `--limit N` keeps positions 0..N-1, and each loader worker
decodes the positions congruent to its id modulo the worker count. Batches arrive in whatever order
the workers finish; eval files every score under its sample's position and reduces them in position
order, so the report does not depend on the number of workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
import webdataset as wds

from train.loader import LoaderConfig, collate_samples, decode_sample, shard_urls


def split_keys(folder: Path) -> list[str]:
    """The sample keys of the split's finished shards, in shard order."""
    keys: list[str] = []
    for url in shard_urls(str(folder)):
        sidecar = Path(url).with_suffix(".parquet")
        if not sidecar.is_file():
            raise FileNotFoundError(f"{sidecar} is missing: the shard's ledger was deleted; re-run `pipe shard` for this split")
        keys += pq.read_table(sidecar, columns=["key"]).column("key").to_pylist()
    return keys


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


def eval_loader(folder: Path, positions: dict[str, int], batch_size: int, workers: int, images: tuple[str, ...], with_palette: bool) -> wds.WebLoader:
    """Batches (uint8 tensors, keys) of the samples in `positions`; each worker reads every shard and
    decodes only its share, so a split in one shard still spreads over all workers."""
    members = LoaderConfig(shards=(str(folder),), images=images, with_palette=with_palette)
    dataset = wds.DataPipeline(
        wds.SimpleShardList(shard_urls(str(folder))),
        wds.tarfile_to_samples(handler=wds.warn_and_continue, select_files=members.wanted),
        wds.select(WorkerShare(positions)),
        wds.map(decode_sample, handler=wds.warn_and_continue),
        wds.batched(batch_size, collation_fn=collate_samples, partial=True),
    )
    return wds.WebLoader(dataset, batch_size=None, num_workers=workers, prefetch_factor=4 if workers > 0 else None)
