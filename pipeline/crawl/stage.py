"""Run one crawl in a child process and report what it did.

Scrapy's Twisted reactor cannot be started twice in one process, so every crawl (and every test's
crawl) gets a fresh spawned child; the parent holds the dataset's lock, waits, and reads back a small
JSON report. Ctrl-C reaches both: Scrapy stops gracefully, and what was recorded stays recorded.
"""

from __future__ import annotations

import errno
import json
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from crawlers.config import CrawlConfig
from manifests.layout import DatasetLayout
from manifests.schema import RAW
from pipeline.errors import PipeError
from pipeline.session import StageSession


@dataclass
class CrawlReport:
    site: str
    tags: str
    seconds: float
    pages: int
    posts_listed: int
    new_counts: list[tuple[str, str, int]]
    stop_reason: str | None
    error: str | None


def run_crawl(config: CrawlConfig) -> CrawlReport:
    """Run the crawl's child under the stage session; PipeError when the board or the disk refused it."""
    new_root = not config.root.exists()
    new_state = not DatasetLayout(config.root).crawl_state().parent.exists()
    config.root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # The child writes the ledger (Scrapy's pipelines record each post); the session holds the lock,
    # clears the temporaries, compacts the ledger at the end and turns Ctrl-C into one line.
    with StageSession(config.root, RAW.stage, RAW) as session:
        session.saved_note = "the rows recorded so far are saved"
        result = _run_child(config)
        _refuse_failed_write(result)
    if result["unreachable"] and not result["new_counts"]:
        # The board never answered, so nothing of this run is left behind.
        _remove_new(config.root, new_root, new_state)
        raise PipeError(result["error"])
    report = CrawlReport(
        site=config.site.name,
        tags=config.tags,
        seconds=time.perf_counter() - started,
        pages=result["pages"],
        posts_listed=result["posts_listed"],
        new_counts=[tuple(row) for row in result["new_counts"]],
        stop_reason=result["stop_reason"],
        error=result["error"],
    )
    session.write_summary(asdict(report))
    return report


def _run_child(config: CrawlConfig) -> dict:
    # A fresh interpreter (not multiprocessing), so callers need no `if __name__ == "__main__"` guard.
    # Config in and report out through pipes: nothing to write on a disk that may be full.
    child = subprocess.Popen([sys.executable, "-m", "pipeline.crawl.child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        out, _ = child.communicate(pickle.dumps(config))
    except KeyboardInterrupt:
        child.communicate()  # the child got the same Ctrl-C and is closing the spider; let it save
        raise
    try:
        return json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise PipeError(f"the crawl process ended with exit code {child.returncode} before reporting; see the log above") from None


def _refuse_failed_write(result: dict) -> None:
    """A write the child could not make (inside the session, so the ledger is not compacted onto a full disk)."""
    failure = result.get("write_error")
    if not failure:
        return
    saved = f"{result['rows_saved']} rows saved"
    if failure["errno"] == errno.ENOSPC:
        raise PipeError(f"no space left on device writing {failure['path']}: {saved}; free space and run the same command again")
    raise PipeError(f"could not write {failure['path']}: {failure['message']}: {saved}; fix it and run the same command again")


def _remove_new(root: Path, new_root: bool, new_state: bool) -> None:
    if new_root:
        shutil.rmtree(root, ignore_errors=True)
    elif new_state:
        shutil.rmtree(DatasetLayout(root).crawl_state().parent, ignore_errors=True)
