"""A stage that does almost nothing, to test the runner apart from any real stage.

It lives in its own module so that spawned worker processes can import it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from manifests.ledger import Ledger
from manifests.schema import LedgerSchema
from pipeline.runner import StageContext, WorkItem, failed_row_defaults

TOY = LedgerSchema(stage="toy", id_column="key", fields=(pa.field("length", pa.int64()),))


@dataclass(frozen=True)
class ToyStage:
    """Items named `boom*` raise, `crash*` kill their worker process; each call leaves a marker file."""

    names: tuple[str, ...]
    calls: Path
    ledger_schema: LedgerSchema = TOY

    def plan(self) -> list[WorkItem]:
        return [WorkItem(id=name, payload=name) for name in self.names]

    def process(self, item: WorkItem, context: StageContext) -> list[dict]:
        (self.calls / f"{item.id}.{os.getpid()}").touch()
        if item.id.startswith("boom"):
            raise ValueError(f"cannot handle {item.id}")
        if item.id.startswith("crash"):
            os._exit(3)
        return [{"key": item.id, "status": "ok", "length": len(item.id)}]

    def failed_rows(self, item: WorkItem, reason: str, detail: str) -> list[dict]:
        return [failed_row_defaults(TOY, item, reason, detail)]

    def finalize(self, ledger: Ledger, context: StageContext) -> list[dict]:
        return []

    def recorded_options(self) -> None:
        return None

    def memo_inputs(self) -> None:
        return None

    def reset(self, context: StageContext) -> None:
        pass
