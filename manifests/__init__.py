"""Dataset bookkeeping: ledger schemas, the Parquet ledger, the dataset folder layout, atomic writes.

The package names below load on first use, so a process that needs only a light module (statuses,
seeding, images) does not import pyarrow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Ledger": "manifests.ledger", "LedgerError": "manifests.errors", "LEDGERS": "manifests.schema", "LedgerSchema": "manifests.schema",
    "STATUS_FAILED": "manifests.statuses", "STATUS_OK": "manifests.statuses", "STATUS_REJECTED": "manifests.statuses",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'manifests' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
