"""What `pipe extract` has to do: every ok prepared image times every chosen method not yet in the ledger.

The CPU workers import this module for `ExtractItem` and `method_params`; what only the main process
needs (the session and rich, the ledger and pyarrow) is imported where it is used, so a worker starts sooner.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from extractors.draws import draw_params
from manifests.seeding import sample_rng
from manifests.statuses import STATUS_OK
from pipeline.errors import PipeError

if TYPE_CHECKING:
    import pyarrow as pa

    from pipeline.extract.config import ExtractConfig

SEED_STAGE = "extract"


@dataclass(frozen=True)
class ExtractItem:
    """One prepared image and the methods still to run on it."""

    key: str
    source_path: str  # relative to the dataset root
    methods: tuple[str, ...]


def line_id(method: str, key: str) -> str:
    return f"{method}/{key}"


def prepared_images(root: Path) -> list[tuple[str, str]]:
    """(key, path) of every ok row of ROOT/prepared.parquet, in key order, one per key."""
    table = prepared_table(root, in_key_order=True)
    return list(zip(table["key"].to_pylist(), table["path"].to_pylist()))


def prepared_table(root: Path, in_key_order: bool = False) -> pa.Table:
    """`prepared_images` as an Arrow table (columns key and path), no Python object per image; sorted
    by key only when asked (sorting a million keys costs more than the rest of a no-op plan)."""
    import pyarrow as pa  # noqa: PLC0415 - main process only (see the module docstring)
    import pyarrow.compute as pc  # noqa: PLC0415

    from manifests.ledger import Ledger  # noqa: PLC0415
    from manifests.schema import PREPARED  # noqa: PLC0415
    from pipeline.session import require_dataset  # noqa: PLC0415

    require_dataset(root)
    ledger = Ledger(root, PREPARED)
    if not ledger.exists():
        raise PipeError(f"no prepared images in {root}: run `pipe prepare SOURCE {root}` first")
    table = ledger.read(columns=["status", "path"])
    table = table.filter(pc.equal(table["status"], STATUS_OK)).select(["key", "path"])
    if pc.count_distinct(table["key"]).as_py() < table.num_rows:  # one row per key, the last one read
        table = table.sort_by("key")  # a stable sort
        keys = table["key"].combine_chunks()
        last = pc.not_equal(keys.slice(0, len(keys) - 1), keys.slice(1))
        return table.filter(pa.concat_arrays([last, pa.array([True])]))
    return table.sort_by("key") if in_key_order else table


def plan_extract(images: pa.Table, methods: tuple[str, ...], done_ids: pa.Array) -> tuple[int, list[ExtractItem]]:
    """(number of (image, method) pairs in scope, the items with work left, in key order) for
    `prepared_table`'s images and the line ids `done_ids` the ledger holds: one set lookup per method
    in Arrow, and an item made only for an image with work left."""
    import numpy as np  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.compute as pc  # noqa: PLC0415

    keys = images["key"].combine_chunks()
    todo = np.zeros((len(keys), len(methods)), dtype=bool)
    for column, method in enumerate(methods):
        prefix = f"{method}/"
        done_here = done_ids.filter(pc.starts_with(done_ids, prefix)) if len(done_ids) else done_ids
        wanted = pc.binary_join_element_wise(pa.scalar(method), keys, "/")  # line_id(method, key)
        todo[:, column] = ~pc.is_in(wanted, value_set=done_here).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(todo.any(axis=1))
    picked = images.take(pa.array(rows, pa.int64()))
    items = [
        ExtractItem(key, path, tuple(method for column, method in enumerate(methods) if todo[row, column]))
        for row, key, path in zip(rows, picked["key"].to_pylist(), picked["path"].to_pylist())
    ]
    return len(keys) * len(methods), sorted(items, key=lambda item: item.key)  # in key order, whatever the table's


def method_params(config: ExtractConfig, settings: dict[str, Any], method: str, key: str) -> dict:
    """A sample's drawn options for `method`: the same draw in every executor and batch."""
    return draw_params(settings, sample_rng(config.seed, SEED_STAGE, method, key))
