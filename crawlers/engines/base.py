"""What every booru spider shares: paging, the checks on each listed post, resume and --limit.

An engine subclass only says how to ask for a page (`page_params`), how to read one
(`read_records` for JSON, `read_xml_records` for XML), where the next page is (`next_cursor`) and
how one record becomes a `Post` (`to_post`; the default here reads the Danbooru/Moebooru record
shape, named by the class's field attributes). Everything else, and every decision about a post
before its download, is here, in listing order, so the same listing gives the same ledger.

The end of a listing is a page of no posts: an empty list (`[]`, `<posts count="0"/>`), or an empty
body after a short page. An empty body where posts were expected (the first page, or after a full
page), or an answer that is not a page of posts, is asked again up to --retries times, then the
crawl fails with one line: some boards answer an empty body for a query they failed, which must not
pass for "no posts". XML declaring entities is refused at once.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import scrapy
from scrapy import signals
from scrapy.exceptions import CannotResolveHostError, CloseSpider, DontCloseSpider, DownloadConnectionRefusedError, IgnoreRequest
from scrapy.http import Request, Response
from scrapy.utils.defer import deferred_from_coro
from twisted.internet import error as net_error

from manifests import reasons
from crawlers.answers import FORMAT_XML, UnreadableAnswer, UnsafeXml, attribute_records, read_answer, xml_error_text
from crawlers.config import CrawlConfig
from crawlers.sites import ESCAPED_FIELDS
from crawlers.filters import rejection
from crawlers.items import PostItem
from crawlers.posts import Post, as_int, as_text, clean_tags, extension_of, normalize_ext, post_id_of
from crawlers.state import CrawlState, Cursor
from manifests.schema import STATUS_OK, STATUS_REJECTED

log = logging.getLogger(__name__)

# The largest API page read (Safebooru's 1000 posts are about 1 MB); independent of --max-file-mb.
API_PAGE_MAX_BYTES = 32 * 1024 * 1024


class ApiError(Exception):
    """The API answered something that is not a page of posts (an error object, a wrong shape)."""


def api_slot(site_name: str) -> str:
    """The Scrapy download slot of a site's API requests: one connection, its own interval."""
    return f"{site_name}-api"


def dict_records(items: list) -> list[dict]:
    """The objects of a JSON array of posts; anything else in it (null, a number) is not a record."""
    return [record for record in items if isinstance(record, dict)]


def error_message(payload: dict, *keys: str) -> str:
    """The text of an API's error object: the first of `keys` it fills, else the whole object."""
    for key in keys:
        if payload.get(key):
            return str(payload[key])
    return str(payload)


def json_list_records(payload: Any, *error_keys: str) -> list[dict]:
    """The records of an API answering a JSON array of posts, or an error object (text under `error_keys`)."""
    if isinstance(payload, dict):
        raise ApiError(error_message(payload, *error_keys))
    if not isinstance(payload, list):
        raise ApiError(f"expected a JSON list of posts, got {type(payload).__name__}")
    return dict_records(payload)


def unescape_fields(record: dict, fields: tuple[str, ...]) -> dict:
    """The record with the HTML entities of exactly `fields` decoded (the ones its board escapes)."""
    decoded = {name: html.unescape(record[name]) for name in fields if isinstance(record.get(name), str)}
    return {**record, **decoded} if decoded else record


class BooruSpider(scrapy.Spider):
    # The API's usual path; `{ext}` becomes json or xml, the format asked for.
    default_api_path: str = ""
    # Where the default `to_post` finds the fields whose names differ between APIs.
    width_key: str = "width"
    height_key: str = "height"
    tags_key: str = "tags"
    rating_from: Callable[[Any], str | None]  # the API's rating value -> a letter; a staticmethod

    def __init__(self, config: CrawlConfig, state: CrawlState, **kwargs: Any) -> None:
        super().__init__(name=self.name, **kwargs)
        self.config = config
        self.state = state
        self.site = config.site
        self.per_page = config.page_size
        self.catching_up = False
        # A page held back because the downloads under way may reach --limit; idle time decides.
        self.held_page: Cursor = None
        self.fatal_error: str | None = None
        # True when the API could not be reached at all (refused, no such host, no route).
        self.unreachable = False
        self.pages_listed = 0
        self.posts_listed = 0
        # Whether the next page must hold posts: the first page, or the one after a full page.
        self.expect_posts = True

    @classmethod
    def from_crawler(cls, crawler, *args: Any, **kwargs: Any):  # type: ignore[override]
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._on_idle, signal=signals.spider_idle)
        return spider

    # ----------------------------------------------------------------- engine interface
    def first_cursor(self) -> Cursor:
        raise NotImplementedError

    def page_params(self, cursor: Cursor) -> dict[str, Any]:
        raise NotImplementedError

    def read_records(self, payload: Any) -> list[dict]:
        raise NotImplementedError

    def read_xml_records(self, root) -> list[dict]:  # noqa: ANN001 - an xml.etree Element
        """`<posts count=.. offset=..><post id=.. md5=.. .../></posts>` (Gelbooru 0.2, Moebooru, Danbooru 1.x)."""
        if root.tag != "posts":
            raise ApiError(xml_error_text(root))
        return attribute_records(root)

    def next_cursor(self, cursor: Cursor, records: list[dict]) -> Cursor:
        raise NotImplementedError

    def to_post(self, record: dict) -> Post:
        """A record that names its file's extension and size (Danbooru, Moebooru); the URL's extension if not."""
        file_url = as_text(record.get("file_url"))
        ext = as_text(record.get("file_ext"))
        return Post(
            site=self.site.name,
            post_id=int(record["id"]),
            # Posts the user may not see (Danbooru's banned, gold-only) come without file_url and md5.
            file_url=file_url,
            md5=as_text(record.get("md5")),
            file_ext=normalize_ext(ext) if ext else extension_of(file_url),
            width=as_int(record.get(self.width_key)),
            height=as_int(record.get(self.height_key)),
            rating=self.rating_from(record.get("rating")),
            tags=clean_tags(record.get(self.tags_key)),
            **self.extra_fields(record),
            source=as_text(record.get("source")),
            file_size=as_int(record.get("file_size")),
        )

    def extra_fields(self, record: dict) -> dict[str, Any]:
        """Post fields only some APIs give (Danbooru's artist and characters), for the default `to_post`."""
        return {}

    def credentials(self, user_param: str, key_param: str) -> dict[str, Any]:
        """The login query parameters, under the engine's names; none unless both user and key are set."""
        if self.config.user and self.config.api_key:
            return {user_param: self.config.user, key_param: self.config.api_key}
        return {}

    # ----------------------------------------------------------------- paging
    @property
    def asks_xml(self) -> bool:
        """True when the request asks for XML (`--format auto` asks JSON and reads either)."""
        return self.config.answer_format == FORMAT_XML

    @property
    def api_path(self) -> str:
        path = self.config.api_path or self.site.api_path or self.default_api_path
        return path.replace("{ext}", "xml" if self.asks_xml else "json")

    def page_url(self, cursor: Cursor) -> str:
        return f"{self.site.root}{self.api_path}?{urlencode(self.page_params(cursor))}"

    def page_request(self, cursor: Cursor, attempt: int = 0) -> Request:
        return Request(
            self.page_url(cursor),
            callback=self.parse_page,
            errback=self.page_failed,
            cb_kwargs={"cursor": cursor, "attempt": attempt},
            dont_filter=True,
            priority=10,  # list the next page before the files of this one queue up further
            meta={
                "download_slot": api_slot(self.site.name),
                # The API interval is a floor set by the user, not something AutoThrottle may lower.
                "autothrottle_dont_adjust_delay": True,
                "handle_httpstatus_all": True,
                "download_maxsize": API_PAGE_MAX_BYTES,
            },
        )

    async def start(self):
        if self.state.limit_reached:
            self.state.stop_reason = f"--limit {self.config.limit} already reached by earlier runs"
            return
        cursor, self.catching_up = self.state.start_cursor(self.first_cursor())
        # A resumed listing does not know whether the page before its cursor was full.
        self.expect_posts = cursor == self.first_cursor()
        yield self.page_request(cursor)

    def page_records(self, response: Response) -> list[dict] | None:
        """The page's records, their escaped fields decoded; None for an empty body."""
        if not response.body.strip():
            return None
        content_type = response.headers.get("Content-Type", b"").decode("latin-1")
        kind, payload = read_answer(response.body, content_type, self.config.answer_format)
        records = self.read_xml_records(payload) if kind == FORMAT_XML else self.read_records(payload)
        fields = ESCAPED_FIELDS[self.site.engine][kind]
        return [unescape_fields(record, fields) for record in records]

    def _ask_again_or_fail(self, response: Response, cursor: Cursor, attempt: int, problem: str):
        """The same page once more (after the API interval), or the one-line failure after --retries."""
        retries = self.config.politeness.retries
        if attempt < retries:
            log.warning("the API's answer for %s %s; asking again (%d of %d)", response.url, problem, attempt + 1, retries)
            yield self.page_request(cursor, attempt + 1)
            return
        tries = f"{attempt + 1} time{'s' if attempt else ''}"
        self._fail(f"the API's answer for {response.url} {problem} (asked {tries})")

    def parse_page(self, response: Response, cursor: Cursor, attempt: int = 0):
        if response.status == 410:
            # Numbered paging has a depth limit (Danbooru: page 1000); stop there, keep what we have.
            self.state.stop_reason = f"the API answered 410 Gone for page {cursor}: the site's paging limit"
            return
        if response.status != 200:
            self._fail(f"the API answered HTTP {response.status} for {response.url}: {_error_text(response)}")
        try:
            records = self.page_records(response)
        except UnsafeXml as exc:
            self._fail(f"the API's answer for {response.url}: {exc}")
        except (UnreadableAnswer, ApiError) as exc:
            yield from self._ask_again_or_fail(response, cursor, attempt, f"is not a page of posts: {exc}")
            return
        if records is None and self.expect_posts:
            problem = "is an empty body where posts were expected (the first page, or after a full page): the board may have failed the query"
            yield from self._ask_again_or_fail(response, cursor, attempt, problem)
            return
        records = records or []  # an empty body after a short page: the end of the listing
        self.expect_posts = len(records) >= self.per_page
        self.pages_listed += 1
        next_cursor = self.next_cursor(cursor, records)
        posts = self._posts(records)
        self.posts_listed += len(posts)
        new = [post for post in posts if post.ledger_id not in self.state.known_posts]
        new = list({post.ledger_id: post for post in new}.values())  # a page repeating a post
        if self.catching_up and posts and not new:
            self.state.stop_reason = "caught up: every post on a page was already recorded"
            next_cursor = None
        taken = []
        for post in new:
            if self.state.limit_may_be_reached:
                break  # the rest stay unrecorded, for a later run with a larger --limit
            taken.append(post)
            yield self._decide(post)
        # Posts the limit left out keep this page open, so a later run resumes here.
        self.state.pages.listed(cursor, [post.ledger_id for post in new], next_cursor)
        if len(taken) < len(new):
            # The downloads under way may reach --limit. If some fail, idle time lists this page
            # again and takes the next posts (those recorded by then are skipped as known).
            self.held_page = cursor
        elif next_cursor is None:
            self.state.stop_reason = self.state.stop_reason or "listed every post of the query"
        elif self.state.limit_may_be_reached:
            self.held_page = next_cursor
        else:
            yield self.page_request(next_cursor)

    def _posts(self, records: list[dict]) -> list[Post]:
        posts = []
        for record in records:
            if post_id_of(record.get("id")) is None:
                posts.append(self.bad_id_post(record))  # recorded rejected bad_post_id, never downloaded
                continue
            try:
                posts.append(self.to_post(record))
            except (KeyError, TypeError, ValueError) as exc:
                # A record without a usable id cannot have a ledger row; say so rather than drop it quietly.
                log.warning("skipping an API record without a usable id (%s): %.200s", exc, record)
        return posts

    def bad_id_post(self, record: dict) -> Post:
        """A record whose id is missing, not a whole number or outside 64 bits, named by what it gave."""
        value = record.get("id")
        if value is None:
            digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:16]
            bad_id = f"no-id-{digest}"
        else:
            bad_id = str(value)[:64]
        return Post(
            site=self.site.name, post_id=None, file_url=as_text(record.get("file_url")), md5=as_text(record.get("md5")),
            file_ext=None, width=None, height=None, rating=None, tags="", bad_id=bad_id,
        )

    def _decide(self, post: Post) -> PostItem:
        item = PostItem(post=post, query=self.config.tags)
        if post.post_id is None:
            item.status, item.reason = STATUS_REJECTED, reasons.BAD_POST_ID
            item.detail = f"the API lists a post with id {post.bad_id!r}: not a whole number in 1..2^63-1"
            return item
        refused = rejection(post, self.config)
        if refused:
            item.status, (item.reason, item.detail) = STATUS_REJECTED, refused
            return item
        md5 = (post.md5 or "").lower()
        known = self.state.by_md5.get(md5) if md5 else None
        if known is not None and known.owner is None:
            # A file a killed run downloaded but did not record: this post owns it now, at once, so a
            # later post with the same md5 (decided before this row is recorded) is its duplicate.
            item.status, item.file = STATUS_OK, self.state.adopt(known, post.ledger_id)
            item.detail = "file kept from an interrupted run"
            return item
        if known is not None:
            item.status, item.reason, item.duplicate_of = STATUS_REJECTED, reasons.DUPLICATE, known.owner
            item.detail = f"same md5 as {known.owner}, already downloaded"
            return item
        if md5 and md5 in self.state.downloading_md5:
            other = self.state.downloading_md5[md5]
            item.status, item.reason, item.duplicate_of = STATUS_REJECTED, reasons.DUPLICATE, other
            item.detail = f"same md5 as {other}, downloading in this run"
            return item
        item.download = True
        self.state.begin_download(post.ledger_id, post.md5)
        return item

    def _on_idle(self) -> None:
        if self.held_page is None or self.fatal_error or self.state.limit_reached:
            if self.held_page is not None and self.state.limit_reached:
                self.state.stop_reason = f"--limit {self.config.limit} reached"
            return
        cursor, self.held_page = self.held_page, None
        self.crawler.engine.crawl(self.page_request(cursor))
        raise DontCloseSpider

    def page_failed(self, failure) -> None:
        request = failure.request
        unreachable = failure.check(*_UNREACHABLE)
        if unreachable:
            self.unreachable = True
            message = f"board not reachable at {self.site.root}: {_UNREACHABLE[unreachable]}"
        elif failure.check(IgnoreRequest):
            message = f"robots.txt of {self.site.root} disallows {request.url}"
        else:
            message = f"could not fetch {request.url}: {failure.getErrorMessage()}"
        # Not CloseSpider: raised from an errback, Scrapy would log the download's traceback too.
        self.fatal_error = self.state.stop_reason = message
        deferred_from_coro(self.crawler.engine.close_spider_async(reason="api_error"))

    def _fail(self, message: str):
        self.fatal_error = message
        self.state.stop_reason = message
        raise CloseSpider("api_error")


# Connection failures that mean "nothing answers there", with the words the error line uses.
_UNREACHABLE = {
    DownloadConnectionRefusedError: "connection refused",
    CannotResolveHostError: "host not found",
    net_error.ConnectionRefusedError: "connection refused",
    net_error.DNSLookupError: "host not found",
    net_error.NoRouteError: "no route to host",
    net_error.TCPTimedOutError: "connection timed out",
}


def _error_text(response: Response) -> str:
    text = response.text[:300] if response.body else ""
    try:
        payload = json.loads(text)
        if isinstance(payload, dict):
            return str(payload.get("message") or payload.get("reason") or payload)
    except ValueError:
        pass
    return " ".join(text.split())[:200] or "(empty body)"
