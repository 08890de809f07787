"""The shard format: one WebDataset tar, its Parquet sidecar and its `_stats.json` done-marker.

A shard `NNNNN` of a split is three files in ROOT/shards/<split>/: `NNNNN.tar` (the samples),
`NNNNN.parquet` (one row per sample in tar order, schema `SHARD_SIDECAR`, written through
manifests.checksummed) and `NNNNN_stats.json` (a digested JSON record, pipeline.shard.done_marker),
written last: a shard is finished exactly when its done-marker exists. Tar headers carry a fixed
mtime, owner and mode, so the same samples always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from manifests.checksummed import DigestMismatch, read_checksummed_parquet

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


class ShardFileError(ValueError):
    """A file of a finished shard that cannot be read as what it should be (truncated, garbage, wrong fields)."""


def _sidecar_error(sidecar: Path, exc: Exception) -> ShardFileError:
    return ShardFileError(f"{sidecar}: not a readable Parquet sidecar ({str(exc).splitlines()[0]})")


def read_sidecar(sidecar: Path, columns: list[str] | None = None) -> pa.Table:
    """A shard's Parquet sidecar (or some of its columns), checked against its page checksums and file
    digest (manifests.checksummed; sidecars from before digests are read as they are); ShardFileError if
    it is damaged, truncated or not Parquet."""
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar} is missing: the shard's ledger was deleted; re-run `pipe shard` for this split")
    try:
        table = read_checksummed_parquet(sidecar.read_bytes()).table
        return table if columns is None else table.select(columns)
    except DigestMismatch as exc:
        raise ShardFileError(f"{sidecar}: damaged Parquet sidecar ({exc})") from None
    except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
        raise _sidecar_error(sidecar, exc) from None


def member_digests(sidecar: Path) -> dict[str, dict[str, str]]:
    """key -> {member extension: SHA-256 hex} from a sidecar; {} for shards written before digests were recorded."""
    table = read_sidecar(sidecar)
    if "member_sha256" not in table.column_names:
        return {}
    return {
        key: dict(zip(members or [], digests or []))
        for key, members, digests in zip(*(table[name].to_pylist() for name in ("key", "members", "member_sha256")))
    }


def sidecar_keys(sidecar: Path) -> list[str]:
    """The sample keys of one shard, in tar order, from its sidecar."""
    return read_sidecar(sidecar, columns=["key"]).column("key").to_pylist()


def split_keys(folder: Path) -> list[str]:
    """The sample keys of a split's finished shards, in shard order."""
    keys: list[str] = []
    for index in finished_shards(folder):
        keys += sidecar_keys(shard_paths(folder, index)[1])
    return keys
