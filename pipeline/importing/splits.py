"""The train/val split an imported source kept, for `pipe shard` (which hashes the key of every other image)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc

from manifests.ledger import Ledger
from manifests.schema import IMPORTS, STATUS_OK


def kept_splits(root: Path) -> dict[str, str]:
    """key -> `train` or `val` for every ok imported pair whose source kept a split ({} without an import)."""
    ledger = Ledger(root, IMPORTS)
    if not ledger.exists():
        return {}
    table = ledger.read()
    table = table.filter(pc.and_(pc.equal(table["status"], STATUS_OK), pc.is_valid(table["split"])))
    return dict(zip(table["key"].to_pylist(), table["split"].to_pylist()))
