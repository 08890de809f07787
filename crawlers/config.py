"""What one `pipe crawl` run is asked to do: one small frozen record, passed to the child process."""

from __future__ import annotations

import hashlib
from functools import cached_property
from dataclasses import dataclass
from pathlib import Path

from crawlers.answers import FORMATS
from crawlers.posts import RATINGS, normalize_ext
from crawlers.sites import SiteRecord
from crawlers.urls import HostRule, parse_host_rule, root_rule

DEFAULT_RATINGS = ("g", "s")
DEFAULT_EXTS = ("jpg", "png", "webp")
# What `--exts` may name: still images pipe can prepare. Videos and archives are never downloaded.
KNOWN_IMAGE_EXTS = ("jpg", "png", "webp", "gif", "bmp", "avif")


@dataclass(frozen=True)
class Politeness:
    """How gently to treat the site. Every knob has a polite default; none is off unless asked."""

    # Minimum seconds between two API requests; None takes the site record's interval.
    request_interval: float | None = None
    # Scrapy AutoThrottle for file downloads: adapts the delay to the server's latency.
    autothrottle: bool = True
    autothrottle_target: float = 2.0
    autothrottle_max_delay: float = 30.0
    # Parallel connections per host for file downloads (API requests always use one).
    connections_per_host: int = 2
    obey_robots: bool = True
    # Retries on 5xx, 429 and timeouts; 429/503 wait for Retry-After, others back off exponentially.
    retries: int = 4
    backoff_base: float = 2.0
    # A Retry-After longer than this is not waited for: the request is recorded as failed.
    max_retry_wait: float = 600.0
    timeout: float = 60.0
    contact: str | None = None


@dataclass(frozen=True)
class CrawlConfig:
    site: SiteRecord
    root: Path
    tags: str
    # Stop once this many posts of this query are downloaded (counting earlier runs); None: all.
    limit: int | None = None
    ratings: tuple[str, ...] = DEFAULT_RATINGS
    min_side: int = 512
    exts: tuple[str, ...] = DEFAULT_EXTS
    max_file_mb: float = 64.0
    per_page: int | None = None
    # Hosts files may come from besides the board's root; None takes the site record's CDN hosts.
    file_hosts: tuple[str, ...] | None = None
    politeness: Politeness = Politeness()
    # The API's answer format (json, xml, auto) and path; None takes the site record's.
    api_format: str | None = None
    api_path: str | None = None
    user: str | None = None
    api_key: str | None = None
    verbose: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", " ".join(self.tags.split()))
        object.__setattr__(self, "ratings", tuple(r.strip().lower() for r in self.ratings if r.strip()))
        object.__setattr__(self, "exts", tuple(dict.fromkeys(normalize_ext(e) for e in self.exts if e.strip())))
        bad = [r for r in self.ratings if r not in RATINGS]
        if bad or not self.ratings:
            raise ValueError(f"--rating takes letters from {','.join(RATINGS)}; got {','.join(self.ratings) or 'none'}")
        bad = [e for e in self.exts if e not in KNOWN_IMAGE_EXTS]
        if bad or not self.exts:
            raise ValueError(f"--exts takes image types from {','.join(KNOWN_IMAGE_EXTS)}; got {','.join(self.exts) or 'none'}")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")
        if self.file_hosts is not None:
            object.__setattr__(self, "file_hosts", tuple(h.strip() for h in self.file_hosts if h.strip()))
        self.host_rules  # noqa: B018 - raises ValueError naming a bad --file-hosts entry
        if self.api_format is not None and self.api_format not in FORMATS:
            raise ValueError(f"--format takes one of {', '.join(FORMATS)}; got {self.api_format!r}")
        if self.api_path is not None and not (self.api_path.startswith("/") and "?" not in self.api_path and "#" not in self.api_path):
            raise ValueError(f"--api-path must be a path on the board starting with / (no query), e.g. /post/index.json; got {self.api_path!r}")
        if self.per_page is not None and not 1 <= self.per_page <= self.site.per_page:
            raise ValueError(f"--per-page for {self.site.name} must be within 1..{self.site.per_page}")

    @property
    def page_size(self) -> int:
        return self.per_page or self.site.per_page

    @property
    def answer_format(self) -> str:
        """json, xml or auto: what to ask for and accept."""
        return self.api_format or self.site.api_format

    @property
    def request_interval(self) -> float:
        interval = self.politeness.request_interval
        return self.site.request_interval if interval is None else interval

    @cached_property
    def host_rules(self) -> tuple[HostRule, ...]:
        """Where requests may go: the board's root host and port, and its file hosts."""
        hosts = self.site.file_hosts if self.file_hosts is None else self.file_hosts
        return (root_rule(self.site.root), *(parse_host_rule(host) for host in hosts))

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def query_id(self) -> str:
        """Names this query's resume state: the same site and tags continue the same crawl."""
        digest = hashlib.sha256(f"{self.site.root}\n{self.tags}".encode()).hexdigest()[:16]
        return f"{self.site.name}-{digest}"
