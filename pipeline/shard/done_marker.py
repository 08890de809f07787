"""A shard's done-marker, `NNNNN_stats.json`: written last, as a digested JSON record, and read back checked.

The record (pipeline.recorded_options' scheme: a `_digest` of its canonical JSON) makes a flipped bit
that still leaves valid JSON (a digit of the tar's size, a hint count, a recorded option) a damaged
file, not a different shard. Done-markers from before digests (no `_digest`) are read as they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from manifests.shards import ShardFileError
from pipeline.recorded_options import DamagedRecord, options_json, parse_digested_json

# What every done-marker holds, and the type of each (what resume and --verify rely on).
DONE_MARKER_FIELDS = {"count": int, "bytes": int, "sha256": str}
# With histogram hints: the SHA-256 of shards/_histogram.npy the shard was drawn with.
HISTOGRAM_DIGEST = "histogram_sha256"


def done_marker_bytes(stats: dict[str, Any]) -> bytes:
    """The done-marker's bytes: the same stats always give the same bytes."""
    return options_json(stats).encode()


def read_done_marker(path: Path) -> dict[str, Any]:
    """A shard's `_stats.json`, checked against its digest and to hold its count, size and SHA-256;
    ShardFileError naming the file if it does not."""
    try:
        stats, _ = parse_digested_json(path.read_bytes().decode())
    except UnicodeDecodeError:
        raise ShardFileError(f"{path}: not valid JSON (not text)") from None
    except DamagedRecord as exc:
        problem = str(exc) if str(exc).startswith("not valid JSON") else f"damaged done-marker ({exc})"
        raise ShardFileError(f"{path}: {problem}") from None
    wrong = [name for name, kind in DONE_MARKER_FIELDS.items() if not isinstance(stats.get(name), kind) or isinstance(stats.get(name), bool)]
    if wrong:
        raise ShardFileError(f"{path}: done-marker without a valid {', '.join(wrong)}")
    return stats
