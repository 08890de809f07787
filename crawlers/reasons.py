"""The reason codes of the crawl ledger (`raw.parquet`), in one place.

Stable short codes: users filter on them, and `pipe status` counts them. HTTP failures are
`http_<code>` (see `http_reason`).
"""

from __future__ import annotations

# Decided from the API record, before any download.
NO_FILE_URL = "no_file_url"  # the API hides the file (banned, paywalled) or gives no URL
UNSUPPORTED_EXT = "unsupported_ext"  # videos, archives, Flash, or an image type not in --exts
RATING_FILTERED = "rating_filtered"
TOO_SMALL = "too_small"  # declared short side under --min-side
TOO_LARGE = "too_large"  # declared or actual size over --max-file-mb
DUPLICATE = "duplicate"  # same content (md5 or sha256) as a file already downloaded

# Decided from the download.
MD5_MISMATCH = "md5_mismatch"
NOT_AN_IMAGE = "not_an_image"  # e.g. an HTML error page served with 200
UNSUPPORTED_TYPE = "unsupported_type"  # an image, but of a type not in --exts (sniffed, not declared)
ANIMATED = "animated"  # a GIF (or APNG/WebP) with more than one frame
EMPTY_BODY = "empty_body"
TRUNCATED = "truncated"  # the connection closed before Content-Length bytes arrived
TIMEOUT = "timeout"
NETWORK_ERROR = "network_error"
ROBOTS_DISALLOWED = "robots_disallowed"


def http_reason(status: int) -> str:
    return f"http_{status}"
