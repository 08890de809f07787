"""The one item type the spiders yield: a listed post and what became of it."""

from __future__ import annotations

from dataclasses import dataclass, field

from crawlers.posts import Post
from crawlers.state import KnownFile


@dataclass
class PostItem:
    post: Post
    query: str
    # True when the post passed the checks on its API record and its file should be fetched.
    download: bool = False
    # The outcome, filled by the spider (decided without a download) or by the files pipeline.
    status: str | None = None
    reason: str | None = None
    detail: str | None = None
    file: KnownFile | None = None
    duplicate_of: str | None = None
    # True when the crawl stopped (disk full) before this post's outcome could be kept: no row, so
    # the next run lists it again.
    abandoned: bool = False
    # FilesPipeline's own result field; pipe reads the outcome above instead.
    files: list = field(default_factory=list)
