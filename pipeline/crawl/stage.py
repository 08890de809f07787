"""Run one crawl in a child process and report what it did.

Scrapy's Twisted reactor cannot be started twice in one process, so every crawl (and every test's
crawl) gets a fresh spawned child; the parent holds the dataset's lock, waits, and reads back a small
JSON report. Ctrl-C reaches both: Scrapy stops gracefully, and what was recorded stays recorded.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

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
    config.root.mkdir(parents=True, exist_ok=True)
    result_file = DatasetLayout(config.root).crawl_state() / "last-run.json"
    started = time.perf_counter()
    # The child writes the ledger (Scrapy's pipelines record each post); the session holds the lock,
    # clears the temporaries, compacts the ledger at the end and turns Ctrl-C into one line.
    with StageSession(config.root, RAW.stage, RAW) as session:
        session.saved_note = "the rows recorded so far are saved"
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.unlink(missing_ok=True)
        config_file = result_file.with_name("config.pickle")
        config_file.write_bytes(pickle.dumps(config))
        # A fresh interpreter (not multiprocessing), so callers need no `if __name__ == "__main__"` guard.
        child = subprocess.Popen([sys.executable, "-m", "pipeline.crawl.child", str(config_file), str(result_file)])
        try:
            exit_code = child.wait()
        except KeyboardInterrupt:
            child.wait()  # the child got the same Ctrl-C and is closing the spider; let it save
            raise
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        raise PipeError(f"the crawl process ended with exit code {exit_code} before reporting; see the log above") from None
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
