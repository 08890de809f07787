"""Where things live inside one dataset folder (see DESIGN.md, "Data flow")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# pipe's own bookkeeping (ledger parts of unfinished runs, temporary files, locks) lives here.
STATE_DIR = ".pipe"


def fanout(key: str) -> str:
    """The two-hex-digit subfolder a key is filed under, so no folder holds more than 1/256 of a dataset."""
    return key[:2]


@dataclass(frozen=True)
class DatasetLayout:
    root: Path

    def ledger(self, stage: str) -> Path:
        return self.root / f"{stage}.parquet"

    def ledger_parts(self, stage: str) -> Path:
        return self.root / STATE_DIR / "parts" / stage

    def tmp(self, stage: str) -> Path:
        return self.root / STATE_DIR / "tmp" / stage

    def lock(self, stage: str) -> Path:
        return self.root / STATE_DIR / "locks" / f"{stage}.lock"

    def sample(self, tree: str, key: str, ext: str) -> Path:
        """`<root>/<tree>/<ab>/<key>.<ext>`, e.g. prepared/3f/3f9a....png."""
        return self.root / tree / fanout(key) / f"{key}.{ext}"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()
