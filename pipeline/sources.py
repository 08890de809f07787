"""Where a stage's inputs come from: a folder of files (recursively) or a crawl ledger (`raw.parquet`).

An input's id is its path as text. A file name that is not UTF-8 (bytes the filesystem allows, which
Python holds as lone surrogates) cannot be written to a ledger: its id spells those bytes as `\\xff`
escapes (`printable_path`), while the payload keeps the real path to read.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pyarrow.compute as pc

from manifests.layout import JOBS_DIR, LINES_TREE, PREPARED_TREE, REPORTS_DIR, RUNS_DIR, SHARDS_DIR, STATE_DIR
from manifests.ledger import Ledger, LedgerError, read_ledger_file
from manifests.schema import RAW, STATUS_OK
from pipeline.errors import PipeError
from pipeline.runner import ColumnPlan, WorkItem


def printable_path(path: str | Path) -> str:
    """`path` as text any file (a ledger, a log) can hold: bytes that are not UTF-8 become `\\xNN` escapes."""
    text = str(path)
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def input_files(source: Path, exclude: Path | None = None, every_entry: bool = False) -> list[WorkItem] | ColumnPlan:
    """One work item per input file; its id (the ledger's `source`) is the absolute path or the crawled post.

    `every_entry`: in a folder, also hidden files and entries that are not regular files (FIFOs,
    sockets, broken links), for a stage that records each with its reason (hidden folders are still
    skipped: .git, a dataset's .pipe)."""
    source = source.expanduser()
    if not source.exists():
        raise PipeError(f"source not found: {source}")
    if source.is_file() and source.suffix == ".parquet":
        return _from_crawl_ledger(source)
    if source.is_file():
        path = source.resolve()
        return [WorkItem(id=printable_path(path), payload=str(path))]
    return _from_folder(source.resolve(), exclude.resolve() if exclude else None, every_entry)


# The folders of a dataset that hold pipe's own outputs (not its crawled originals, raw/).
MANAGED_FOLDERS = (STATE_DIR, PREPARED_TREE, LINES_TREE, SHARDS_DIR, RUNS_DIR, REPORTS_DIR, JOBS_DIR)


def refuse_own_outputs(source: Path, root: Path) -> None:
    """Refuse a source that would feed a stage its own outputs: ROOT itself, or a folder pipe manages in it.

    (A ROOT inside SOURCE is fine: the folder walk leaves ROOT out.)"""
    source, root = source.expanduser().resolve(), root.expanduser().resolve()
    if source == root:
        raise PipeError(f"{source} is the dataset folder itself: its outputs and ledgers would be read as inputs; give the folder of the originals")
    if source.is_relative_to(root):
        managed = source.relative_to(root).parts[0]
        if managed in MANAGED_FOLDERS:
            raise PipeError(f"{source} is inside {root / managed}, which pipe writes: its outputs would be read as inputs; give the folder of the originals")


def _from_folder(folder: Path, exclude: Path | None, every_entry: bool) -> list[WorkItem]:
    """Every regular file below `folder`, sorted; hidden folders (.git) are skipped, and unless
    `every_entry`, hidden files (.DS_Store) and what is not a regular file too.

    Files are not filtered by extension: the decoder decides what is an image, and everything else
    gets a ledger row saying why it was not.
    """
    items = []
    for directory, subdirs, files in os.walk(folder):
        here = Path(directory)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and (exclude is None or here / d != exclude))
        for name in sorted(files):
            path = here / name
            if every_entry or (not name.startswith(".") and path.is_file()):
                items.append(WorkItem(id=printable_path(path), payload=str(path)))
    return items


def _from_crawl_ledger(path: Path) -> ColumnPlan:
    """The downloaded originals of a crawl (rows with status ok), as columns: a run with nothing new
    makes no object per post. Paths are relative to the ledger's folder."""
    try:
        # A dataset's own raw.parquet may have parts from an unfinished crawl: read them too.
        table = Ledger(path.parent, RAW).read(columns=["status", "path"]) if path.name == RAW.file_name else read_ledger_file(path, RAW)
    except LedgerError as exc:
        raise PipeError(str(exc)) from None
    table = table.filter(pc.equal(table["status"], STATUS_OK))
    if table.num_rows == 0:
        raise PipeError(f"{path} holds no downloaded (status ok) posts")
    table = table.filter(pc.not_equal(table["path"], ""))  # a null path is left out too
    # The ledger's folder is resolved once: a resolve() per post was most of a no-op prepare at 1M posts.
    # The post (`site:id`) is the prepared ledger's source, so `pipe status` can follow a post through.
    return ColumnPlan(table[RAW.id_column].combine_chunks(), table["path"].combine_chunks(),
                      functools.partial(_original_path, str(path.parent.resolve())))


def _original_path(base: str, relative: str) -> str:
    # The relative paths are pipe's own (raw/ab/<sha256>.<ext>); normpath only folds a foreign "..".
    return os.path.normpath(os.path.join(base, relative))
