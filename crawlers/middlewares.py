"""Retries that back off: 429 and 503 wait for `Retry-After`, other retryable failures wait base*2^n s.

Scrapy's RetryMiddleware retries at once, which is what gets a crawler banned. This one keeps its
settings (RETRY_TIMES, RETRY_HTTP_CODES) and adds the wait. A 429 or 503 is the server asking the
whole client to slow down, so the wait holds the whole host: no request to it leaves, neither new
ones nor ones already queued in Scrapy's download slots. A 500 or a timeout concerns one URL, so only
that request waits before its retry.

`BoardHostsOnly` refuses any request off the board's hosts, redirects included.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from datetime import timezone

from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import IgnoreRequest
from scrapy.http import Request, Response
from scrapy.utils.asyncio import call_later
from scrapy.utils.httpobj import urlparse_cached

from crawlers.urls import unsafe_reason

log = logging.getLogger(__name__)

_RETRY_AFTER_CODES = {429, 503}
# Request meta key: monotonic time before which this retry must not be sent.
_NOT_BEFORE = "pipe_not_before"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        # RFC 9110 says whole seconds; some servers send fractions, which mean what they say.
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


class PoliteRetryMiddleware(RetryMiddleware):
    def __init__(self, settings) -> None:  # noqa: ANN001
        super().__init__(settings)
        self.backoff_base = settings.getfloat("PIPE_BACKOFF_BASE", 2.0)
        self.max_wait = settings.getfloat("PIPE_MAX_RETRY_WAIT", 600.0)
        # host -> monotonic time before which nothing may be sent to it
        self.blocked_until: dict[str, float] = {}
        self.slot_hosts: dict[str, str] = {}

    async def process_request(self, request: Request, spider=None) -> None:  # noqa: ANN001
        host = _host(request)
        self.slot_hosts[self.crawler.engine.downloader.get_slot_key(request)] = host
        not_before = request.meta.get(_NOT_BEFORE, 0.0)
        while (wait := max(self.blocked_until.get(host, 0.0), not_before) - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        return None

    def process_response(self, request: Request, response: Response, spider=None) -> Request | Response:  # noqa: ANN001
        if request.meta.get("dont_retry", False) or response.status not in self.retry_http_codes:
            return response
        attempt = request.meta.get("retry_times", 0)
        wait = None
        if response.status in _RETRY_AFTER_CODES:
            wait = parse_retry_after(response.headers.get("Retry-After", b"").decode("latin-1"))
        if wait is None:
            wait = self.backoff_base * 2**attempt
        if wait > self.max_wait:
            log.warning("%s asks to wait %.0f s (over the %.0f s limit): giving up %s", _host(request), wait, self.max_wait, request.url)
            return response
        retry = self._retry(request, f"HTTP {response.status}")
        if retry is None:
            return response
        if response.status in _RETRY_AFTER_CODES:
            self._block(_host(request), wait)
        else:
            retry.meta[_NOT_BEFORE] = time.monotonic() + wait
        log.info("HTTP %d from %s: waiting %.1f s before retry %d", response.status, _host(request), wait, attempt + 1)
        return retry

    def process_exception(self, request: Request, exception: Exception, spider=None):  # noqa: ANN001, ANN201
        retry = super().process_exception(request, exception)
        if isinstance(retry, Request):
            retry.meta[_NOT_BEFORE] = time.monotonic() + self.backoff_base * 2 ** request.meta.get("retry_times", 0)
        return retry

    def _block(self, host: str, seconds: float) -> None:
        until = time.monotonic() + seconds
        self.blocked_until[host] = max(self.blocked_until.get(host, 0.0), until)
        # Requests that passed process_request already sit in the downloader's slot queues. Scrapy has
        # no public pause for a slot; its own delay mechanism is `latercall`, which we set the same way.
        downloader = self.crawler.engine.downloader
        for key, slot in list(downloader.slots.items()):
            if self.slot_hosts.get(key) != host:
                continue
            if slot.latercall:
                slot.latercall.cancel()
            slot.latercall = call_later(seconds, _release_slot, downloader, slot)


def _release_slot(downloader, slot) -> None:  # noqa: ANN001
    slot.latercall = None
    downloader._process_queue(slot)


def _host(request: Request) -> str:
    return urlparse_cached(request).netloc



class UnsafeUrl(IgnoreRequest):
    """A request the crawl must not send: not http(s), or off the board's hosts (see `crawlers.urls`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BoardHostsOnly:
    """Refuses, before robots.txt or any connection, every request off the board's hosts.

    The spider never asks for such a file, but a redirect can point anywhere; Scrapy sends the
    redirected request through the downloader middlewares again, so this sees it too."""

    def __init__(self, crawler) -> None:  # noqa: ANN001
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):  # noqa: ANN001, ANN206
        return cls(crawler)

    def process_request(self, request: Request, spider=None) -> None:  # noqa: ANN001
        unsafe = unsafe_reason(request.url, self.crawler.spider.config.host_rules)
        if unsafe:
            raise UnsafeUrl(unsafe)


__all__ = ["BoardHostsOnly", "PoliteRetryMiddleware", "UnsafeUrl", "parse_retry_after"]
