"""The crawl's item pipelines: download and verify the file, then write the ledger row.

`RawFilesPipeline` is Scrapy's FilesPipeline (which keeps the original bytes; ImagesPipeline would
re-encode them to JPEG), made content-addressed and strict: the body must be an image of an allowed
type with the declared md5, and it is stored atomically as `raw/<ab>/<sha256>.<ext>`. Every outcome,
including transport failures, becomes a reason on the item. `LedgerPipeline` turns items into ledger
rows and writes them in small atomic parts.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any

from scrapy.exceptions import DownloadCancelledError, DownloadTimeoutError, IgnoreRequest, ResponseDataLossError
from scrapy.http import Request, Response
from scrapy.pipelines.files import FilesPipeline, FSFilesStore
from scrapy.utils.defer import deferred_from_coro
from twisted.internet.error import TimeoutError as TwistedTimeoutError
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseFailed

from manifests import reasons
from crawlers.items import PostItem
from crawlers.middlewares import UnsafeUrl
from crawlers.state import CrawlState, KnownFile, ledger_row
from crawlers.verify import DownloadRejected, verify_download
from manifests.atomic import write_bytes_atomic
from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import RAW, STATUS_FAILED, STATUS_OK, STATUS_REJECTED

log = logging.getLogger(__name__)

# Reasons that say nothing about the post itself: the next run tries it again.
TRANSIENT_REASONS = {reasons.TIMEOUT, reasons.NETWORK_ERROR, reasons.TRUNCATED}


class AtomicFilesStore(FSFilesStore):
    """FilesPipeline's filesystem store, writing through a temporary name so no file is ever half there."""

    def persist_file(self, path: str, buf, info, meta=None, headers=None) -> None:  # noqa: ANN001 - Scrapy's signature
        root = Path(self.basedir)
        write_bytes_atomic(root / path, buf.getvalue(), tmp_dir=DatasetLayout(root).tmp(RAW.stage))


class RawFilesPipeline(FilesPipeline):
    STORE_SCHEMES = {**FilesPipeline.STORE_SCHEMES, "file": AtomicFilesStore}
    # Failures are ledger rows, not log noise.
    LOG_FAILED_RESULTS = False

    def __init__(self, store_uri: str, *, crawler) -> None:  # noqa: ANN001
        super().__init__(store_uri, crawler=crawler)
        self.crawler = crawler

    @property
    def state(self) -> CrawlState:
        return self.crawler.spider.state

    def get_media_requests(self, item: Any, info) -> list[Request]:  # noqa: ANN001
        if not isinstance(item, PostItem) or not item.download:
            return []
        return [Request(item.post.file_url, meta={"post": item.post.ledger_id, "download_maxsize": self.state.config.max_file_bytes})]

    async def media_to_download(self, request: Request, info, *, item: Any = None) -> None:  # noqa: ANN001
        return None  # resume is decided from the ledger before the request exists; always fetch

    async def media_downloaded(self, response: Response, request: Request, info, *, item: Any = None) -> dict:  # noqa: ANN001
        if response.status != 200:
            return _rejected(reasons.http_reason(response.status), f"HTTP {response.status} for {response.url}")
        config = self.state.config
        try:
            image = verify_download(response.body, item.post.md5, config.exts, config.max_file_bytes)
        except DownloadRejected as exc:
            return _rejected(exc.reason, exc.detail)
        known = self.state.by_sha256.get(image.sha256)
        if known is not None and known.owner is None:
            # The bytes a killed run left unrecorded (a board without md5s): this post takes them.
            return {"file": self.state.adopt(known, item.post.ledger_id), "url": response.url}
        if known is not None:
            return {"duplicate": known}
        path = self.state.file_path(image.sha256, image.ext)
        try:
            self.store.persist_file(path, io.BytesIO(response.body), info)
        except OSError as exc:
            # A full disk (or a read-only one) ends the crawl; this post stays unrecorded for the next run.
            self.state.write_failed(self.state.root / path, exc)
            return {"abandoned": True}
        self.state.file_stored(path)
        return {"file": KnownFile(image.sha256, path, image.size, item.post.ledger_id), "url": response.url}

    def media_failed(self, failure: Failure, request: Request, info) -> None:  # noqa: ANN001
        reason, detail = classify_failure(failure)
        raise DownloadRejected(reason, detail)

    def file_downloaded(self, response: Response, request: Request, info, *, item: Any = None) -> str:  # noqa: ANN001
        raise NotImplementedError("RawFilesPipeline stores files in media_downloaded")

    def item_completed(self, results: list, item: Any, info) -> Any:  # noqa: ANN001
        if not isinstance(item, PostItem) or not item.download:
            return item
        ok, value = results[0] if results else (False, Failure(DownloadRejected(reasons.NETWORK_ERROR, "no result")))
        if ok and "abandoned" in value:
            item.abandoned = True
        elif not ok:
            error = value.value if isinstance(value, Failure) else value
            reason = getattr(error, "reason", reasons.NETWORK_ERROR)
            item.reason, item.detail = reason, getattr(error, "detail", str(error))
            item.status = STATUS_FAILED if reason in TRANSIENT_REASONS or reason.startswith("http_5") else STATUS_REJECTED
        elif "rejected" in value:
            item.reason, item.detail = value["rejected"]
            item.status = STATUS_FAILED if item.reason.startswith("http_5") or item.reason == "http_429" else STATUS_REJECTED
        elif "duplicate" in value:
            known: KnownFile = value["duplicate"]
            item.status, item.reason, item.duplicate_of = STATUS_REJECTED, reasons.DUPLICATE, known.owner
            item.detail = f"same content (sha256) as {known.owner or 'a file kept from an interrupted run'}"
        else:
            item.status, item.file = STATUS_OK, value["file"]
            if value.get("url") and value["url"] != item.post.file_url:
                item.detail = f"redirected to {value['url']}"
        return item


def _rejected(reason: str, detail: str) -> dict:
    return {"rejected": (reason, detail)}


def classify_failure(failure: Failure) -> tuple[str, str]:
    """A download that produced no response, as a ledger (reason, detail)."""
    error = failure.value
    if isinstance(error, DownloadRejected):
        return error.reason, error.detail
    if isinstance(error, UnsafeUrl):  # a redirect off the board's hosts: never followed
        return reasons.UNSAFE_URL, f"redirected: {error.detail}"
    if isinstance(error, IgnoreRequest):
        return reasons.ROBOTS_DISALLOWED if "robots" in str(error).lower() else reasons.NETWORK_ERROR, str(error)
    if isinstance(error, DownloadCancelledError):
        return reasons.TOO_LARGE, f"cancelled: {error}"
    if isinstance(error, (DownloadTimeoutError, TwistedTimeoutError, TimeoutError)):
        return reasons.TIMEOUT, str(error) or "the download timed out"
    if isinstance(error, ResponseDataLossError) or (
        isinstance(error, ResponseFailed) and any("DataLoss" in type(r.value).__name__ for r in error.reasons)
    ):
        return reasons.TRUNCATED, "the connection closed before the declared Content-Length arrived"
    return reasons.NETWORK_ERROR, f"{type(error).__name__}: {error}"


class LedgerPipeline:
    """Writes one `raw.parquet` row per item, in atomic parts every few seconds, and compacts at the end.

    A write that fails (a full disk) stops the crawl: the rows saved so far stay saved, the posts not
    yet saved get no row (the next run lists them again), and `state.write_error` says what failed.
    """

    def __init__(self, crawler) -> None:  # noqa: ANN001
        self.crawler = crawler
        settings = crawler.settings
        self.flush_rows = settings.getint("PIPE_LEDGER_FLUSH_ROWS", 64)
        self.flush_seconds = settings.getfloat("PIPE_LEDGER_FLUSH_SECONDS", 2.0)
        self.buffer: list[dict] = []
        self.last_flush = time.monotonic()
        self.ledger: Ledger | None = None

    @classmethod
    def from_crawler(cls, crawler):  # noqa: ANN001, ANN206
        return cls(crawler)

    @property
    def state(self) -> CrawlState:
        return self.crawler.spider.state

    def open_spider(self, spider=None) -> None:  # noqa: ANN001
        self.ledger = Ledger(self.state.root, RAW)

    def process_item(self, item: PostItem, spider=None) -> PostItem:  # noqa: ANN001
        self.state.end_download(item.post.ledger_id)
        if item.abandoned or self.state.write_error is not None:
            stop_crawl(self.crawler)
            return item
        row = ledger_row(item.post, item.query, item.status or STATUS_FAILED, item.reason, item.detail, item.file, item.duplicate_of)
        if item.status == STATUS_OK:
            row["reason"] = None
        self.state.recorded(row)
        self.buffer.append(row)
        if self.state.on_row is not None:
            self.state.on_row(row)
        if len(self.buffer) >= self.flush_rows or time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()
        return item

    def flush(self) -> None:
        rows, self.buffer = self.buffer, []
        self.last_flush = time.monotonic()
        if not rows or self.state.write_error is not None:
            return
        try:
            self.ledger.append(rows)
        except Exception as exc:  # noqa: BLE001 - a full disk, or a row pyarrow refuses: stop, say which
            self.state.write_failed(self.ledger.path, exc)
            stop_crawl(self.crawler)
            return
        self.state.rows_saved += len(rows)
        try:
            self.state.flushed([row[RAW.id_column] for row in rows])
        except OSError as exc:  # the resume cursor: the rows are saved, the next run re-lists a page
            self.state.write_failed(self.state.cursor_file, exc)
            stop_crawl(self.crawler)

    def close_spider(self, spider=None) -> None:  # noqa: ANN001
        self.flush()
        if self.state.write_error is not None:
            return  # compacting would write the whole ledger again onto the full disk
        try:
            self.state.save_cursor()
            self.ledger.compact()
        except Exception as exc:  # noqa: BLE001 - Scrapy would only log it and the run would look fine
            self.state.write_failed(self.ledger.path, exc)


def stop_crawl(crawler) -> None:  # noqa: ANN001
    """Close the spider (once) after a failed write: nothing more is listed or downloaded."""
    state: CrawlState = crawler.spider.state
    if not state.stopping:
        state.stopping = True
        deferred_from_coro(crawler.engine.close_spider_async(reason="write_error"))
