"""The shard format: one WebDataset tar, its Parquet sidecar and its `_stats.json` done-marker.

A shard `NNNNN` of a split is three files in ROOT/shards/<split>/: `NNNNN.tar` (the samples),
`NNNNN.parquet` (one row per sample in tar order, schema `SHARD_SIDECAR`) and `NNNNN_stats.json`,
written last: a shard is finished exactly when its done-marker exists. Tar headers carry a fixed
mtime, owner and mode, so the same samples always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

STATS_SUFFIX = "_stats.json"
TAR_MTIME = 0.0
TAR_OWNER = "pipe"
TAR_MODE = 0o444


def shard_name(index: int) -> str:
    return f"{index:05d}"


def shard_paths(folder: Path, index: int) -> tuple[Path, Path, Path]:
    """(tar, sidecar, stats) of shard `index` in `folder`."""
    name = shard_name(index)
    return folder / f"{name}.tar", folder / f"{name}.parquet", folder / f"{name}{STATS_SUFFIX}"


def finished_shards(folder: Path) -> list[int]:
    """Indices of the shards of a split folder that have their done-marker, in order."""
    if not folder.is_dir():
        return []
    names = (p.name[: -len(STATS_SUFFIX)] for p in folder.glob(f"*{STATS_SUFFIX}"))
    return sorted(int(name) for name in names if name.isdigit())


def finished_tars(folder: Path) -> list[Path]:
    """The tars of a split's finished shards, in order."""
    return [shard_paths(folder, index)[0] for index in finished_shards(folder)]


def sidecar_keys(sidecar: Path) -> list[str]:
    """The sample keys of one shard, in tar order, from its sidecar."""
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar} is missing: the shard's ledger was deleted; re-run `pipe shard` for this split")
    return pq.read_table(sidecar, columns=["key"]).column("key").to_pylist()


def split_keys(folder: Path) -> list[str]:
    """The sample keys of a split's finished shards, in shard order."""
    keys: list[str] = []
    for index in finished_shards(folder):
        keys += sidecar_keys(shard_paths(folder, index)[1])
    return keys
