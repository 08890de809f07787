"""Atomic file writes: write to a temporary name in the same folder tree, then rename over the target.

A run killed at any instant therefore leaves either the old file or the new one, never half of one;
what it can leave is a temporary file, and those live under names that resume sweeps away.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TMP_SUFFIX = ".tmp"


@contextmanager
def atomic_target(final: Path, tmp_dir: Path | None = None, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `final`, on error it is removed.

    `tmp_dir` must be on the same filesystem as `final` (rename is only atomic there). `durable`
    fsyncs the file before the rename, for files whose loss on power failure would cost more than
    redoing one sample (ledgers, not images).
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    folder = tmp_dir if tmp_dir is not None else final.parent
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{final.name}.{os.getpid()}{TMP_SUFFIX}"
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(final: Path, data: bytes, tmp_dir: Path | None = None, durable: bool = False) -> None:
    with atomic_target(final, tmp_dir, durable) as tmp:
        tmp.write_bytes(data)
