"""Writing one WebDataset shard (the format is `manifests.shards`): tar, Parquet sidecar, done-marker.

The tar is written under a temporary name and renamed when complete, then the sidecar, then the
stats file last: a shard is finished exactly when its stats file exists, and anything else found in
a shard folder is the leftover of a killed run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import webdataset as wds

from manifests.atomic import atomic_target, write_bytes_atomic
from manifests.schema import SHARD_SIDECAR
from manifests.shards import TAR_MODE, TAR_MTIME, TAR_OWNER, shard_name, shard_paths
from pipeline.shard.synthesize import SampleOutcome


class _HashingFile:
    """A write-only file wrapper that keeps the SHA-256 and size of what went through it."""

    def __init__(self, handle) -> None:
        self.handle, self.digest, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.handle.flush()


@dataclass(frozen=True)
class ShardSummary:
    split: str
    index: int
    count: int
    bytes: int
    keys: tuple[str, ...]


class ShardWriter:
    """Packs samples into shard `index` of `split` until `full`; `close` publishes it."""

    def __init__(self, folder: Path, split: str, index: int, tmp_dir: Path, seed: int, fingerprint: dict) -> None:
        self.folder, self.split, self.index, self.seed, self.fingerprint = folder, split, index, seed, fingerprint
        self.tar_path, self.sidecar_path, self.stats_path = shard_paths(folder, index)
        self._target = atomic_target(self.tar_path, tmp_dir)
        tmp = self._target.__enter__()
        self._handle = open(tmp, "wb")
        self._stream = _HashingFile(self._handle)
        self._tar = wds.TarWriter(self._stream, user=TAR_OWNER, group=TAR_OWNER, mode=TAR_MODE, encoder=False, mtime=TAR_MTIME)
        self.rows: list[dict] = []

    @property
    def shard_id(self) -> str:
        return f"{self.split}/{shard_name(self.index)}"

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def size(self) -> int:
        return self._stream.size

    def add(self, outcome: SampleOutcome) -> None:
        assert outcome.members is not None
        names = sorted(outcome.members)  # TarWriter writes members in sorted order
        digests = outcome.member_digests_by_name()
        self._tar.write({"__key__": outcome.job.key, **outcome.members})
        self.rows.append(
            {
                "key": outcome.job.key,
                "split": self.split,
                "shard": self.shard_id,
                "source_path": outcome.job.color_path,
                "line_source": outcome.line_source,
                "hint": outcome.hint,
                "artifacts": ",".join(self.fingerprint["artifacts"]),
                "seed": self.seed,
                "members": names,
                "member_bytes": [len(outcome.members[n]) for n in names],
                "member_sha256": [digests[n] for n in names],
            }
        )

    def close(self) -> ShardSummary:
        self._tar.close()  # writes the end-of-archive blocks
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._target.__exit__(None, None, None)  # rename into place
        table = pa.Table.from_pylist(self.rows, schema=SHARD_SIDECAR)
        with atomic_target(self.sidecar_path) as tmp:
            pq.write_table(table, tmp)
        stats = {
            "shard": self.shard_id,
            "count": self.count,
            "bytes": self._stream.size,
            "sha256": self._stream.digest.hexdigest(),
            "first_key": self.rows[0]["key"] if self.rows else None,
            "last_key": self.rows[-1]["key"] if self.rows else None,
            "hints": dict(sorted(_tally(r["hint"] for r in self.rows).items())),
            "line_sources": dict(sorted(_tally(r["line_source"] for r in self.rows).items())),
            "config": self.fingerprint,
        }
        write_bytes_atomic(self.stats_path, (json.dumps(stats, indent=1, sort_keys=True) + "\n").encode(), durable=True)
        return ShardSummary(self.split, self.index, self.count, self._stream.size, tuple(r["key"] for r in self.rows))

    def abandon(self) -> None:
        """Drop the unfinished tar (on interruption): nothing of it is left behind."""
        try:
            self._handle.close()
        finally:
            self._target.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)


def _tally(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
