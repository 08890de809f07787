"""The child process of `pipe crawl`: runs Scrapy once, records every post, and reports back.

`pipeline.crawl.stage` starts it as `python -m pipeline.crawl.child` (Scrapy's reactor cannot restart
within one process), sends the pickled `CrawlConfig` on stdin, and reads one JSON report from stdout
when the spider closes. Pipes, not files: a crawl that fills the disk must still be able to report.

`PIPE_TEST_KILL_AFTER_FILES=K` (tests only) kills the whole process group with SIGKILL once the K-th
file is stored: a `kill -9` landing between the files on disk and the ledger that names them.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import signal
import sys
import time
from collections import Counter
from dataclasses import asdict

from crawlers.config import CrawlConfig
from manifests.ledger import Ledger
from manifests.schema import RAW


def crawl_in_child(config: CrawlConfig) -> dict:
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
        state.on_file = _kill_point()
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
        "unreachable": spider.unreachable if spider else False,
        "write_error": asdict(state.write_error) if state.write_error else None,
        "rows_saved": state.rows_saved,
    }
    return result


def _kill_point():  # noqa: ANN202
    """The test hook of the module docstring; None (no hook) unless the variable is set."""
    after = int(os.environ.get("PIPE_TEST_KILL_AFTER_FILES") or 0)
    if after <= 0:
        return None
    stored = []

    def on_file(path: str) -> None:
        stored.append(path)
        if len(stored) >= after:
            os.killpg(os.getpgid(0), signal.SIGKILL)

    return on_file


def _configure_logging(verbose: int) -> None:
    from rich.logging import RichHandler  # noqa: PLC0415

    from pipeline.console import console  # noqa: PLC0415

    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    # The level goes on the handler: Scrapy gives its own loggers explicit levels that bypass the root's.
    handler = RichHandler(console=console, show_path=False, level=level)
    logging.basicConfig(level=level, format="%(message)s", handlers=[handler], force=True)
    # Download failures are ledger rows with reasons; Scrapy's own per-failure tracebacks are noise.
    # A robots.txt that cannot be fetched is logged with a traceback; the API request after it says why.
    noisy = ("scrapy.pipelines.media", "scrapy.pipelines.files", "scrapy.core.scraper", "scrapy.core.downloader.handlers.http11", "scrapy.downloadermiddlewares.robotstxt")
    for name in noisy:
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


def _exit_with_parent() -> None:
    """End this process when `pipe crawl` (or `pipe run`) dies without telling it (kill -9, OOM killer):
    an orphaned crawl would go on writing into a dataset whose next run no longer knows about it.
    Nothing is lost: files go through temporary names and ledger parts are written atomically."""
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    _exit_with_parent()
    # The report gets stdout to itself: anything else that prints goes to stderr with the log.
    report_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    report = crawl_in_child(pickle.loads(sys.stdin.buffer.read()))  # noqa: S301 - from our own parent
    report_out.write(json.dumps(report) + "\n")
    report_out.flush()
