"""Writing one WebDataset shard (the format is `manifests.shards`): tar, Parquet sidecar, done-marker.

The tar is written under a temporary name and renamed when complete, then the sidecar, then the
stats file last: a shard is finished exactly when its stats file exists, and anything else found in
a shard folder is the leftover of a killed run.
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import webdataset as wds

from manifests.atomic import atomic_target, write_bytes_atomic
from manifests.checksummed import checksummed_parquet
from manifests.schema import SHARD_SIDECAR
from manifests.shards import TAR_MODE, TAR_MTIME, TAR_OWNER, shard_name, shard_paths
from pipeline.shard.done_marker import done_marker_bytes
from pipeline.shard.synthesize import SampleOutcome


@contextmanager
def naming(path: Path):
    """An OSError without a file name (a full disk refuses a write(), not an open()) gets `path`, the
    file being made, so the one-line error says which; the error itself (errno, type) is kept."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc


class _HashingFile:
    """A write-only file wrapper that keeps the SHA-256 and size of what went through it. Once
    `discard` is called, writes go nowhere: the tar module still flushes its buffer and end blocks when
    an abandoned writer is collected, and the file they would go to is closed."""

    def __init__(self, handle) -> None:
        self.handle, self.digest, self.size, self.discarding = handle, hashlib.sha256(), 0, False

    def write(self, data: bytes) -> int:
        if self.discarding:
            return len(data)
        self.digest.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def discard(self) -> None:
        self.discarding = True

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

    def __init__(self, folder: Path, split: str, index: int, tmp_dir: Path, seed: int, fingerprint: dict, stamp: dict | None = None) -> None:
        """`stamp`: more fields for the done-marker (the histogram digest the samples were drawn with)."""
        self.folder, self.split, self.index, self.seed, self.fingerprint = folder, split, index, seed, fingerprint
        self.stamp = dict(stamp or {})
        self.tar_path, self.sidecar_path, self.stats_path = shard_paths(folder, index)
        self._target = atomic_target(self.tar_path, tmp_dir)
        tmp = self._target.__enter__()
        self._handle = open(tmp, "wb")  # noqa: SIM115 - held across the shard writer's life, closed by close()/abort()
        self._stream = _HashingFile(self._handle)
        self._tar = wds.TarWriter(self._stream, user=TAR_OWNER, group=TAR_OWNER, mode=TAR_MODE, encoder=False, mtime=TAR_MTIME)
        self.rows: list[dict] = []
        self._published = False

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
        with naming(self.tar_path):
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
        """Publish the shard: the tar renamed into place, then its sidecar, then its done-marker (last)."""
        with naming(self.tar_path):
            self._tar.close()  # writes the end-of-archive blocks
            self._handle.flush()
            os.fsync(self._handle.fileno())
        self._handle.close()
        self._target.__exit__(None, None, None)  # rename into place
        self._published = True
        table = pa.Table.from_pylist(self.rows, schema=SHARD_SIDECAR)
        with naming(self.sidecar_path):
            write_bytes_atomic(self.sidecar_path, checksummed_parquet(table))
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
            **self.stamp,
        }
        with naming(self.stats_path):
            write_bytes_atomic(self.stats_path, done_marker_bytes(stats), durable=True)
        return ShardSummary(self.split, self.index, self.count, self._stream.size, tuple(r["key"] for r in self.rows))

    def abandon(self, error: BaseException) -> None:
        """Drop the unfinished shard (on Ctrl-C, a full disk, any error): nothing of it is left behind.

        The tar stream's pending bytes are discarded rather than written to the closed file (which
        would print `Exception ignored in _Stream.__del__` at exit); a tar or sidecar already
        published without its done-marker is deleted (resume would, too)."""
        self._stream.discard()
        try:
            self._tar.close()
        except Exception:  # noqa: BLE001 - the error being handled is `error`; the tar is dropped anyway
            pass
        try:
            self._handle.close()
        finally:
            if self._published:
                for path in (self.stats_path, self.sidecar_path, self.tar_path):
                    path.unlink(missing_ok=True)
            else:
                self._target.__exit__(type(error), error, None)


def _tally(values) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
