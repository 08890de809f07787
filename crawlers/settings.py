"""The Scrapy settings of a crawl, derived from `CrawlConfig` (nothing is read from a settings module)."""

from __future__ import annotations

from typing import Any

from crawlers.config import CrawlConfig
from crawlers.engines.base import api_slot
from manifests.version import PIPE_VERSION as __version__


def user_agent(contact: str | None) -> str:
    """Names the tool (boards ask for that) and, when given, how to reach whoever runs it."""
    agent = f"pipe/{__version__} (line-art dataset builder"
    return f"{agent}; contact: {contact})" if contact else f"{agent})"


def scrapy_settings(config: CrawlConfig) -> dict[str, Any]:
    polite = config.politeness
    return {
        "BOT_NAME": "pipe",
        "USER_AGENT": user_agent(polite.contact),
        "ROBOTSTXT_OBEY": polite.obey_robots,
        "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
        # API requests: one connection and a fixed minimum interval (no jitter below it).
        "DOWNLOAD_SLOTS": {api_slot(config.site.name): {"concurrency": 1, "delay": config.request_interval, "jitter": 0}},
        # File downloads: a few connections per host, paced by AutoThrottle from the server's latency.
        "CONCURRENT_REQUESTS_PER_DOMAIN": polite.connections_per_host,
        "CONCURRENT_REQUESTS": max(16, 4 * polite.connections_per_host),
        # Not 0: with the asyncio reactor, Scrapy 2.19's downloader dispatches a whole slot queue at
        # once when a slot's delay is 0 (the transfer starts in a task that has not run yet), which
        # ignores the per-host connection limit. Any delay makes it hand out one request at a time.
        "DOWNLOAD_DELAY": 0.001,
        "DOWNLOAD_DELAY_JITTER": 0,
        "AUTOTHROTTLE_ENABLED": polite.autothrottle,
        "AUTOTHROTTLE_START_DELAY": 1.0,
        "AUTOTHROTTLE_MAX_DELAY": polite.autothrottle_max_delay,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": polite.autothrottle_target,
        "RETRY_ENABLED": True,
        "RETRY_TIMES": polite.retries,
        "RETRY_HTTP_CODES": [500, 502, 503, 504, 522, 524, 408, 429],
        # Posts that fail get a ledger row with the reason; Scrapy's own error line would repeat it.
        "RETRY_GIVE_UP_LOG_LEVEL": "INFO",
        "PIPE_BACKOFF_BASE": polite.backoff_base,
        "PIPE_MAX_RETRY_WAIT": polite.max_retry_wait,
        "DOWNLOADER_MIDDLEWARES": {
            # Before robots.txt (100): a refused host is not even asked for its robots.txt.
            "crawlers.middlewares.BoardHostsOnly": 50,
            "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
            "crawlers.middlewares.PoliteRetryMiddleware": 550,
        },
        "DOWNLOAD_TIMEOUT": polite.timeout,
        # Files larger than this are refused from their Content-Length, or cancelled mid-transfer when
        # the server sends none; API pages carry their own bound (`API_PAGE_MAX_BYTES`).
        "DOWNLOAD_MAXSIZE": config.max_file_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        # Only http(s): no handler exists for file://, data:, ftp:// or s3:// even if a URL got past the checks.
        "DOWNLOAD_HANDLERS": {"file": None, "data": None, "ftp": None, "s3": None},
        "ITEM_PIPELINES": {"crawlers.pipelines.RawFilesPipeline": 100, "crawlers.pipelines.LedgerPipeline": 900},
        "FILES_STORE": str(config.root),
        "MEDIA_ALLOW_REDIRECTS": True,
        "COOKIES_ENABLED": False,
        "TELNETCONSOLE_ENABLED": False,
        "LOG_INSTALL_ROOT_HANDLER": False,
        "LOG_LEVEL": ("WARNING", "INFO", "DEBUG")[min(config.verbose, 2)],
    }
