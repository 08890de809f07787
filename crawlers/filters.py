"""Which listed posts to download: pure checks on the API record, in a fixed order.

The first failing check gives the post's reason, so a post is `no_file_url` before it is
`rating_filtered`: the ledger says the most basic reason a post was not taken. A file URL off the
board's hosts (or not http/https) is `unsafe_url` before anything else is looked at: no request is made.
"""

from __future__ import annotations

from manifests import reasons
from crawlers.config import CrawlConfig
from crawlers.posts import Post
from crawlers.urls import unsafe_reason


def rejection(post: Post, config: CrawlConfig) -> tuple[str, str] | None:
    """(reason, detail) when the post must not be downloaded, else None."""
    if not post.file_url:
        return reasons.NO_FILE_URL, "the API lists the post without a file URL (hidden, banned or restricted)"
    unsafe = unsafe_reason(post.file_url, config.host_rules)
    if unsafe:
        return reasons.UNSAFE_URL, unsafe
    return record_rejection(post, config)


def record_rejection(post: Post, config: CrawlConfig) -> tuple[str, str] | None:
    """The checks on the record's own fields (type, rating, declared sizes), after the URL checks:
    also what `pipe import booru` applies to a dump's posts, whose files are local."""
    if post.file_ext not in config.exts:
        return reasons.UNSUPPORTED_EXT, f"{post.file_ext or 'no extension'} is not one of --exts {','.join(config.exts)}"
    if post.rating not in config.ratings:
        return reasons.RATING_FILTERED, f"rating {post.rating or 'unknown'} is not one of --rating {','.join(config.ratings)}"
    if post.width is not None and post.height is not None and min(post.width, post.height) < config.min_side:
        return reasons.TOO_SMALL, f"{post.width}x{post.height}: short side under --min-side {config.min_side}"
    if post.file_size is not None and post.file_size > config.max_file_bytes:
        return reasons.TOO_LARGE, f"declared {post.file_size:,} bytes, over --max-file-mb {config.max_file_mb:g}"
    return None
