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
    import pyarrow.compute as pc  # noqa: PLC0415 - main process only (see the module docstring)

    from manifests.ledger import Ledger  # noqa: PLC0415
    from manifests.schema import PREPARED  # noqa: PLC0415
    from pipeline.session import require_dataset  # noqa: PLC0415

    require_dataset(root)
    ledger = Ledger(root, PREPARED)
    if not ledger.exists():
        raise PipeError(f"no prepared images in {root}: run `pipe prepare SOURCE {root}` first")
    table = ledger.read(columns=["status", "path"])
    table = table.filter(pc.equal(table["status"], STATUS_OK)).select(["key", "path"])
    pairs = dict(zip(table["key"].to_pylist(), table["path"].to_pylist()))
    return sorted(pairs.items())


def plan_extract(images: list[tuple[str, str]], methods: tuple[str, ...], done: set[str]) -> tuple[int, list[ExtractItem]]:
    """(number of (image, method) pairs in scope, the items with work left) for `prepared_images`."""
    items = []
    for key, path in images:
        todo = tuple(m for m in methods if line_id(m, key) not in done)
        if todo:
            items.append(ExtractItem(key, path, todo))
    return len(images) * len(methods), items


def method_params(config: ExtractConfig, settings: dict[str, Any], method: str, key: str) -> dict:
    """A sample's drawn options for `method`: the same draw in every executor and batch."""
    return draw_params(settings, sample_rng(config.seed, SEED_STAGE, method, key))
