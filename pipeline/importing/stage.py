"""The import as a runner stage: one pair is one work item and one row of ROOT/imports.parquet.

The pair is the resumable unit: its row is recorded only once both of its files are written, so a
killed run redoes at most the pairs it had not recorded. `finalize` settles exact duplicates (the same
colour bytes, hence the same key, in two pairs): the pair kept first stays kept, else the one with the
smallest id; the others are rejected `duplicate` and share its files. A pair whose colour `pipe prepare`
already made (the same file prepared into this root) is a duplicate of that image.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


from manifests import reasons
from manifests.ledger import Ledger
from manifests.schema import IMPORTS, PREPARED, STATUS_OK, STATUS_REJECTED, LedgerSchema
from pipeline.importing.pairs import REAL_METHOD, ImportConfig, base_row, import_pair
from pipeline.importing.sources import Layout, PairFiles, list_pairs
from pipeline.recorded_options import RecordedOptions
from pipeline.runner import StageContext, WorkItem, any_unsettled_ok_row, failed_row_defaults


@dataclass(frozen=True)
class ImportStage:
    source: Path
    root: Path
    config: ImportConfig

    @property
    def ledger_schema(self) -> LedgerSchema:
        return IMPORTS

    def plan(self) -> list[WorkItem]:
        return list_pairs(self.source, self.config.layout, self.config.color_dir, self.config.sketch_dir, exclude=self.root)

    def process(self, item: WorkItem, context: StageContext) -> list[dict]:
        return [import_pair(item.payload, self.config, context)]

    def failed_rows(self, item: WorkItem, reason: str, detail: str) -> list[dict]:
        files: PairFiles = item.payload
        return [{**base_row(files, self.config), **failed_row_defaults(IMPORTS, item, reason, detail)}]

    def finalize(self, ledger: Ledger, context: StageContext) -> list[dict]:
        if not any_unsettled_ok_row(ledger):  # nothing new: the wide columns stay unread
            return []
        return self.settle_duplicates(ledger.read().to_pylist(), context)

    def recorded_options(self) -> RecordedOptions:
        return RecordedOptions(self.config.options())

    def memo_inputs(self) -> None:
        """Folders of files: every run lists them."""
        return None

    def reset(self, context: StageContext) -> None:
        """Nothing to remove up front: a redo rewrites every pair's files, and publishing removes the
        files of pairs that are no longer kept (pipeline.importing.publish)."""

    def settle_duplicates(self, rows: list[dict], context: StageContext) -> list[dict]:
        """The rows of every pair whose duplicate status was decided now (ok rows not yet settled).

        A pair whose colour bytes `pipe prepare` already made an image of (from the same file) is a
        duplicate of that image: its prepared file is prepare's, so its line art would not match it.
        """
        by_key: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            if row["status"] == STATUS_OK:
                by_key[row["key"]].append(row)
        unsettled = {key: group for key, group in by_key.items() if not all(row["dedupe_settled"] for row in group)}
        if not unsettled:
            return []
        prepared_elsewhere = _prepared_by_others(context, {row["pair"] for row in rows})
        changed = []
        for key in sorted(unsettled):
            group = unsettled[key]
            if key in prepared_elsewhere:
                kept_source, others = prepared_elsewhere[key], [row for row in group if not row["dedupe_settled"]]
                context.layout.line_art(REAL_METHOD, key).unlink(missing_ok=True)
            else:
                settled = [row for row in group if row["dedupe_settled"]]
                kept = settled[0] if settled else min(group, key=lambda row: row["pair"])
                others = [row for row in group if row is not kept]
                if others and self.config.layout is Layout.folders:
                    # Same colour bytes, maybe different sketches: the line file on disk is whichever
                    # pair wrote last; write the kept pair's again so the file is its own.
                    kept = import_pair(_files_of(kept), self.config, context)
                kept["dedupe_settled"] = True
                kept_source = kept["pair"]
                changed.append(kept)
            for row in others:
                row.update(
                    status=STATUS_REJECTED, reason=reasons.DUPLICATE, detail=f"same colour bytes as {kept_source}",
                    duplicate_of=kept_source, path=None, line_path=None, dedupe_settled=True,
                )
            changed += others
        return changed


def _prepared_by_others(context: StageContext, pairs: set[str]) -> dict[str, str]:
    """key -> source of the ok prepared.parquet rows that no imported pair made (`pipe prepare`'s)."""
    table = Ledger(context.layout.root, PREPARED).read()
    return {
        row["key"]: row["source"]
        for row in table.select(["key", "status", "source"]).to_pylist()
        if row["status"] == STATUS_OK and row["source"] not in pairs
    }


def _files_of(row: dict) -> PairFiles:
    return PairFiles(row["color_source"], row["sketch_source"], row["split"])
