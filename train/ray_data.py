"""pipe's shards as Ray Data input: `read_split(ROOT/shards/train)` is a `ray.data.Dataset` of samples.

`pipe shard` writes plain WebDataset tars, so Ray Data's own `read_webdataset` reads them with no
conversion; this adds the one rule of pipe's format it cannot know: only shards with their done-marker
are finished (a tar without one may be from a run in progress). Each row is a decoded sample:
`__key__`, `color.png` uint8 (H, W, 3), `line.png` (H, W), `hint.png` (H, W, 4), `draft.png`
(H, W, 3) when the shards carry drafts (`color.jpg`, `line.jpg`, `draft.jpg` for members sharded
with `--jpeg`), `palette.npy` when they carry palettes, and `json` (the
sample's recorded draws) as a dict. Ray is an optional extra: `pip install -e ".[ray]"`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from manifests.shards import finished_tars


def read_split(folder: Path, **options: Any) -> Any:
    """A Ray Data dataset of the finished shards in `folder` (ROOT/shards/<split>); `options` go to
    `ray.data.read_webdataset` (e.g. `shuffle="files"`, `concurrency`)."""
    import ray.data  # noqa: PLC0415 - an optional extra

    paths = [str(path) for path in finished_tars(Path(folder))]
    if not paths:
        raise FileNotFoundError(f"no finished shards in {folder}: run `pipe shard ROOT` first")
    return ray.data.read_webdataset(paths, **options)
