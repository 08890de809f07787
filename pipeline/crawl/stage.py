"""Run one crawl in a child process and report what it did.

Scrapy's Twisted reactor cannot be started twice in one process, so every crawl (and every test's
crawl) gets a fresh spawned child; the parent holds the dataset's lock, waits, and reads back a small
JSON report. Ctrl-C reaches both: Scrapy stops gracefully, and what was recorded stays recorded.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from crawlers.config import CrawlConfig
from manifests.layout import STATE_DIR, DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import RAW
from pipeline.errors import PipeError
from pipeline.runner import stage_lock


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
    layout = DatasetLayout(config.root)
    config.root.mkdir(parents=True, exist_ok=True)
    result_file = config.root / STATE_DIR / "crawl" / "last-run.json"
    started = time.perf_counter()
    with stage_lock(layout, RAW.stage):
        shutil.rmtree(layout.tmp(RAW.stage), ignore_errors=True)  # leftovers of a killed run
        result_file.parent.mkdir(parents=True, exist_ok=True)
        result_file.unlink(missing_ok=True)
        config_file = result_file.with_name("config.pickle")
        config_file.write_bytes(pickle.dumps(config))
        # A fresh interpreter (not multiprocessing), so callers need no `if __name__ == "__main__"` guard.
        child = subprocess.Popen([sys.executable, "-m", "pipeline.crawl.stage", str(config_file), str(result_file)])
        try:
            exit_code = child.wait()
        except KeyboardInterrupt:
            child.wait()  # the child got the same Ctrl-C and is closing the spider; let it save
            raise PipeError("interrupted: the rows recorded so far are saved; run the same command again to resume") from None
        finally:
            shutil.rmtree(layout.tmp(RAW.stage), ignore_errors=True)
    try:
        result = json.loads(result_file.read_text())
    except (OSError, ValueError):
        raise PipeError(f"the crawl process ended with exit code {exit_code} before reporting; see the log above") from None
    return CrawlReport(
        site=config.site.name,
        tags=config.tags,
        seconds=time.perf_counter() - started,
        pages=result["pages"],
        posts_listed=result["posts_listed"],
        new_counts=[tuple(row) for row in result["new_counts"]],
        stop_reason=result["stop_reason"],
        error=result["error"],
    )


def _crawl_in_child(config: CrawlConfig, result_path: str) -> None:
    from scrapy.crawler import CrawlerProcess  # noqa: PLC0415 - only the child needs Scrapy

    from crawlers.engines import spider_for  # noqa: PLC0415
    from crawlers.settings import scrapy_settings  # noqa: PLC0415
    from crawlers.state import CrawlState  # noqa: PLC0415

    _configure_logging(config.verbose)
    state = CrawlState(config, Ledger(config.root, RAW).read())
    counts: Counter[tuple[str, str]] = Counter()
    spider_cls = spider_for(config.site.engine)
    with _Progress(config, state) as progress:

        def on_row(row: dict) -> None:
            counts[(row["status"], row["reason"] or "")] += 1
            progress.advance(row)

        state.on_row = on_row
        process = CrawlerProcess(scrapy_settings(config))
        _configure_logging(config.verbose)  # Scrapy resets the root level; put ours back
        crawler = process.create_crawler(spider_cls)
        process.crawl(crawler, config=config, state=state)
        process.start()
    spider = crawler.spider
    if state.stop_reason is None and state.limit_reached:
        state.stop_reason = f"--limit {config.limit} reached"
    rows = sorted(((s, r, n) for (s, r), n in counts.items()), key=lambda row: (-row[2], row[0], row[1]))
    result = {
        "pages": spider.pages_listed if spider else 0,
        "posts_listed": spider.posts_listed if spider else 0,
        "new_counts": rows,
        "stop_reason": state.stop_reason,
        "error": spider.fatal_error if spider else None,
    }
    Path(result_path).write_text(json.dumps(result))


def _configure_logging(verbose: int) -> None:
    from rich.logging import RichHandler  # noqa: PLC0415

    from pipeline.console import console  # noqa: PLC0415

    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    # The level goes on the handler: Scrapy gives its own loggers explicit levels that bypass the root's.
    handler = RichHandler(console=console, show_path=False, level=level)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    # Download failures are ledger rows with reasons; Scrapy's own per-failure tracebacks are noise.
    for name in ("scrapy.pipelines.media", "scrapy.pipelines.files", "scrapy.core.scraper", "scrapy.core.downloader.handlers.http11"):
        logging.getLogger(name).setLevel(logging.CRITICAL if verbose < 2 else logging.DEBUG)


class _Progress:
    """A Rich bar over recorded posts (out of --limit when given), with ok/rejected/failed counts."""

    def __init__(self, config: CrawlConfig, state) -> None:  # noqa: ANN001
        from pipeline.console import console, make_progress  # noqa: PLC0415

        self.enabled = config.progress
        self.console = console
        self.progress = make_progress()
        self.tally = Counter()
        self.state = state
        self.label = f"crawl {config.site.name}"
        self.total = None if config.limit is None else max(0, config.limit - state.ok_for_query)
        self.last_log = time.monotonic()

    def __enter__(self) -> _Progress:
        if self.enabled:
            self.progress.start()
            self.task = self.progress.add_task(self.label, total=self.total)
        return self

    def advance(self, row: dict) -> None:
        self.tally[row["status"]] += 1
        if not self.enabled:
            return
        summary = " ".join(f"{status} {self.tally[status]}" for status in ("ok", "rejected", "failed") if self.tally[status])
        # With --limit, the bar counts downloads toward it; without, every recorded post.
        advance = (1 if row["status"] == "ok" else 0) if self.total is not None else 1
        self.progress.update(self.task, advance=advance, description=f"{self.label} [dim]({summary})[/]")
        if not self.console.is_terminal and time.monotonic() - self.last_log > 30:
            logging.getLogger(__name__).warning("%s: %s", self.label, summary)
            self.last_log = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()


if __name__ == "__main__":
    _crawl_in_child(pickle.loads(Path(sys.argv[1]).read_bytes()), sys.argv[2])  # noqa: S301 - our own file
