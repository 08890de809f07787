"""What earlier runs already did, so a restarted crawl continues without repeating itself.

Three things survive a crash (SIGKILL included):
- the ledger (`raw.parquet` + parts): posts already recorded are not listed again, and files whose
  md5 or sha256 is known are not downloaded again;
- files in `raw/` written after the last ledger flush ("orphans"): they are hashed at start, so a post
  whose declared md5 matches one takes it without a download;
- the page cursor in `.pipe/crawl/<query>.json`: the first page that still has unrecorded posts.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from crawlers.config import CrawlConfig
from manifests.atomic import write_bytes_atomic
from manifests.layout import RAW_TREE, DatasetLayout
from manifests.schema import RAW, STATUS_FAILED, STATUS_OK

Cursor = str | int | None


@dataclass(frozen=True)
class KnownFile:
    key: str
    path: str  # relative to the dataset root
    size: int
    # The ledger id of the post that downloaded it; None for an orphan of a killed run.
    owner: str | None


@dataclass(frozen=True)
class WriteFailure:
    """The first write the crawl could not make (a full disk): what, where, and what was saved before."""

    path: str
    errno: int | None
    message: str


def failed_write(path: Path, error: Exception) -> WriteFailure:
    """pyarrow reports a full disk as an OSError without errno, its message naming the cause."""
    if not isinstance(error, OSError):  # a row the ledger cannot hold: a bug, still never a silent loss
        return WriteFailure(str(path), None, f"{type(error).__name__}: {error}")
    code = error.errno
    if code is None and "no space left on device" in str(error).lower():
        code = errno.ENOSPC
    return WriteFailure(str(path), code, os.strerror(code) if code else str(error))


@dataclass
class _Page:
    cursor: Cursor
    outstanding: set[str]


@dataclass
class PageBook:
    """Pages listed this run, in order, with the posts of each not yet written to the ledger.

    The resume point is the first page with such posts, or the page after the last one. Each post
    knows its pages and the first open page only moves forward (a settled page never reopens), so
    settling a post and finding the resume point cost O(1) amortised, not a pass over every page.
    """

    pages: list[_Page] = field(default_factory=list)
    after_last: Cursor = None
    exhausted: bool = False
    _pages_of: dict[str, list[int]] = field(default_factory=dict)
    _first_open: int = 0

    def listed(self, cursor: Cursor, post_ids: list[str], next_cursor: Cursor) -> None:
        index = len(self.pages)
        self.pages.append(_Page(cursor, set(post_ids)))
        for post_id in post_ids:
            self._pages_of.setdefault(post_id, []).append(index)
        self.after_last = next_cursor
        self.exhausted = next_cursor is None

    def settled(self, post_id: str) -> None:
        for index in self._pages_of.pop(post_id, ()):
            self.pages[index].outstanding.discard(post_id)

    def resume_cursor(self) -> tuple[Cursor, bool]:
        """(cursor, exhausted): where a restarted crawl should start listing."""
        while self._first_open < len(self.pages) and not self.pages[self._first_open].outstanding:
            self._first_open += 1
        if self._first_open < len(self.pages):
            return self.pages[self._first_open].cursor, False
        return self.after_last, self.exhausted


class CrawlState:
    """Everything the spider and pipelines share during one run (Scrapy runs them on one thread)."""

    def __init__(self, config: CrawlConfig, ledger: pa.Table) -> None:
        self.config = config
        self.root = config.root
        self.cursor_file = DatasetLayout(self.root).crawl_state() / f"{config.query_id}.json"
        self.known_posts: set[str] = set()
        self.by_md5: dict[str, KnownFile] = {}
        self.by_sha256: dict[str, KnownFile] = {}
        self.ok_for_query = 0
        # Downloads started and not yet recorded, and the md5s they will bring.
        self.downloading: dict[str, str] = {}
        self.downloading_md5: dict[str, str] = {}
        self.pages = PageBook()
        self.stop_reason: str | None = None
        # Called with every ledger row as it is recorded (the progress display).
        self.on_row: Callable[[dict], None] | None = None
        # Called with each file's dataset-relative path once it is stored (a test's kill point).
        self.on_file: Callable[[str], None] | None = None
        # The first write that failed; the crawl stops there and its ledger keeps what was saved.
        self.write_error: WriteFailure | None = None
        self.stopping = False  # the spider was asked to close after write_error
        self.rows_saved = 0
        self._load_ledger(ledger)
        self._adopt_orphans()

    # ------------------------------------------------------------------ startup
    def _load_ledger(self, table: pa.Table) -> None:
        columns = ["post", "site", "query", "status", "key", "path", "md5", "bytes"]
        for row in table.select(columns).to_pylist():
            # Failed posts (timeouts, 5xx, truncated bodies) are tried again on the next run.
            if row["status"] != STATUS_FAILED:
                self.known_posts.add(row["post"])
            if row["status"] == STATUS_OK and row["path"]:
                known = KnownFile(row["key"], row["path"], row["bytes"] or 0, row["post"])
                self.by_sha256[known.key] = known
                if row["md5"]:
                    self.by_md5[row["md5"].lower()] = known
                if row["site"] == self.config.site.name and row["query"] == self.config.tags:
                    self.ok_for_query += 1

    def _adopt_orphans(self) -> None:
        """Files a killed run wrote after its last ledger flush: index them so they are not fetched again."""
        tree = self.root / RAW_TREE
        if not tree.is_dir():
            return
        for directory, _, files in os.walk(tree):
            for name in files:
                key = name.split(".", 1)[0]
                if key in self.by_sha256 or name.endswith(".tmp"):
                    continue
                path = Path(directory) / name
                data = path.read_bytes()
                if hashlib.sha256(data).hexdigest() != key:
                    path.unlink()  # not what its name says (cannot happen with atomic writes; be safe)
                    continue
                known = KnownFile(key, path.relative_to(self.root).as_posix(), len(data), None)
                self.by_sha256[key] = known
                self.by_md5.setdefault(hashlib.md5(data).hexdigest(), known)  # noqa: S324

    def start_cursor(self, first: Cursor) -> tuple[Cursor, bool]:
        """(cursor, catching_up). After a finished crawl, list from the top again and stop at the
        first page with nothing new (new uploads arrive at the top)."""
        try:
            saved = json.loads(self.cursor_file.read_text())
        except (OSError, ValueError):
            return first, False
        if saved.get("exhausted"):
            return first, True
        return saved.get("cursor", first), False

    # ------------------------------------------------------------------ during the run
    @property
    def limit_reached(self) -> bool:
        return self.config.limit is not None and self.ok_for_query >= self.config.limit

    @property
    def limit_may_be_reached(self) -> bool:
        """True when the downloads under way would reach the limit if they all succeed."""
        limit = self.config.limit
        return limit is not None and self.ok_for_query + len(self.downloading) >= limit

    def begin_download(self, post_id: str, md5: str | None) -> None:
        self.downloading[post_id] = md5 or ""
        if md5:
            self.downloading_md5[md5.lower()] = post_id

    def adopt(self, orphan: KnownFile, post_id: str) -> KnownFile:
        """`post_id` takes a file a killed run left unrecorded: from now on it is that file's owner."""
        owned = replace(orphan, owner=post_id)
        self.by_sha256[owned.key] = owned
        for md5, known in list(self.by_md5.items()):
            if known.key == owned.key:
                self.by_md5[md5] = owned
        return owned

    def file_stored(self, path: str) -> None:
        if self.on_file is not None:
            self.on_file(path)

    def write_failed(self, path: Path, error: Exception) -> None:
        if self.write_error is None:
            self.write_error = failed_write(path, error)
            self.stop_reason = f"could not write {path}: {self.write_error.message}"

    def end_download(self, post_id: str) -> None:
        md5 = self.downloading.pop(post_id, "")
        if md5 and self.downloading_md5.get(md5.lower()) == post_id:
            del self.downloading_md5[md5.lower()]

    def recorded(self, row: dict) -> None:
        """A row is about to be written: update counts and indexes."""
        post = row["post"]
        if row["status"] != STATUS_FAILED:
            self.known_posts.add(post)
        if row["status"] == STATUS_OK and row["path"]:
            known = KnownFile(row["key"], row["path"], row["bytes"] or 0, post)
            self.by_sha256[known.key] = known
            if row["md5"]:
                self.by_md5[row["md5"].lower()] = known
            if row["query"] == self.config.tags:
                self.ok_for_query += 1

    def flushed(self, post_ids: list[str]) -> None:
        """Rows are safely in a ledger part: move the resume cursor past them."""
        for post_id in post_ids:
            self.pages.settled(post_id)
        self.save_cursor()

    def save_cursor(self) -> None:
        cursor, exhausted = self.pages.resume_cursor()
        if not self.pages.pages:
            return
        payload = {"site": self.config.site.name, "tags": self.config.tags, "cursor": cursor, "exhausted": exhausted}
        write_bytes_atomic(self.cursor_file, json.dumps(payload).encode())

    def file_path(self, key: str, ext: str) -> str:
        return f"{RAW_TREE}/{key[:2]}/{key}.{ext}"


def ledger_row(post, query: str, status: str, reason: str | None, detail: str | None, file: KnownFile | None = None, duplicate_of: str | None = None) -> dict:
    """The crawl ledger row for one post (see `manifests.schema.RAW`)."""
    return {
        "key": file.key if file else "",
        "status": status,
        "reason": reason,
        "detail": detail,
        RAW.id_column: post.ledger_id,
        "site": post.site,
        "post_id": post.post_id,
        "query": query,
        "file_url": post.file_url,
        "md5": post.md5,
        "file_ext": post.file_ext,
        "file_size": post.file_size,
        "width": post.width,
        "height": post.height,
        "rating": post.rating,
        "tags": post.tags,
        "artist": post.artist,
        "characters": post.characters,
        "source": post.source,
        "path": file.path if file else None,
        "bytes": file.size if file else None,
        "duplicate_of": duplicate_of,
    }
