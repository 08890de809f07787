"""Where a stage's inputs come from: a folder of files (recursively) or a crawl ledger (`raw.parquet`)."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.compute as pc

from manifests.ledger import Ledger, LedgerError, read_ledger_file
from manifests.schema import RAW, STATUS_OK
from pipeline.errors import PipeError
from pipeline.runner import WorkItem


def input_files(source: Path, exclude: Path | None = None) -> list[WorkItem]:
    """One work item per input file; its id (the ledger's `source`) is the absolute path or the crawled post."""
    source = source.expanduser()
    if not source.exists():
        raise PipeError(f"source not found: {source}")
    if source.is_file() and source.suffix == ".parquet":
        return _from_crawl_ledger(source)
    if source.is_file():
        path = source.resolve()
        return [WorkItem(id=str(path), payload=str(path))]
    return _from_folder(source.resolve(), exclude.resolve() if exclude else None)


def _from_folder(folder: Path, exclude: Path | None) -> list[WorkItem]:
    """Every regular file below `folder`, sorted; hidden files and folders (.git, .DS_Store) are skipped.

    Files are not filtered by extension: the decoder decides what is an image, and everything else
    gets a ledger row saying why it was not.
    """
    items = []
    for directory, subdirs, files in os.walk(folder):
        here = Path(directory)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and (exclude is None or here / d != exclude))
        for name in sorted(files):
            path = here / name
            if not name.startswith(".") and path.is_file():
                items.append(WorkItem(id=str(path), payload=str(path)))
    return items


def _from_crawl_ledger(path: Path) -> list[WorkItem]:
    """The downloaded originals of a crawl (rows with status ok); paths are relative to the ledger's folder."""
    try:
        # A dataset's own raw.parquet may have parts from an unfinished crawl: read them too.
        table = Ledger(path.parent, RAW).read() if path.name == RAW.file_name else read_ledger_file(path, RAW)
    except LedgerError as exc:
        raise PipeError(str(exc)) from None
    table = table.filter(pc.equal(table["status"], STATUS_OK))
    items = []
    # The post (`site:id`) is the prepared ledger's source, so `pipe status` can follow a post through.
    for post, relative in zip(table[RAW.id_column].to_pylist(), table["path"].to_pylist()):
        if relative:
            items.append(WorkItem(id=post, payload=str((path.parent / relative).resolve())))
    if not items and table.num_rows == 0:
        raise PipeError(f"{path} holds no downloaded (status ok) posts")
    return items
