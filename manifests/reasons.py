"""Every reason code a ledger can carry, in one place.

Codes are stable and short: scripts filter on them and `pipe status` counts them. The `detail` column
next to each says the measured value and the threshold, or the error message.
"""

from __future__ import annotations

# ----------------------------------------------------------------- any stage
EXCEPTION = "exception"  # the per-sample function raised (detail: type, message, file:line)
WORKER_CRASHED = "worker_crashed"  # the worker process died on this sample twice (crash, out of memory)
MISSING_INPUT = "missing_input"  # the file a ledger row points to is gone
DECODE_ERROR = "decode_error"  # not an image, an unknown format, or truncated/corrupt data
ENCODE_ERROR = "encode_error"  # an output could not be encoded or written (disk full, permissions)

# ----------------------------------------------------------------- crawl (raw.parquet)
# Decided from the API record, before any download.
NO_FILE_URL = "no_file_url"  # the API hides the file (banned, paywalled) or gives no URL
UNSUPPORTED_EXT = "unsupported_ext"  # videos, archives, Flash, or an image type not in --exts
RATING_FILTERED = "rating_filtered"
TOO_SMALL = "too_small"  # crawl: declared short side under --min-side; prepare: decoded short side
TOO_LARGE = "too_large"  # crawl: declared or actual size over --max-file-mb; prepare: over --max-pixels
DUPLICATE = "duplicate"  # same content (same bytes, same key) as an input already kept
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
UNSAFE_URL = "unsafe_url"  # the file URL is not http(s) on the board's own hosts: never requested
MISSING_FILE = "missing_file"  # import booru: the dump's metadata lists a post whose file is not in SOURCE
BAD_POST_ID = "bad_post_id"  # the API record's id is missing, not an integer, or out of the 64-bit range


def http_reason(status: int) -> str:
    """HTTP failures are `http_<code>`."""
    return f"http_{status}"


# ----------------------------------------------------------------- prepare (prepared.parquet)
READ_ERROR = "read_error"  # the file could not be read at all (permissions, vanished, I/O error)
NOT_A_REGULAR_FILE = "not_a_regular_file"  # a FIFO, socket, device or broken link found in the source folder
ASPECT_RATIO = "aspect_ratio"  # long side / short side above --max-aspect
GRAYSCALE = "grayscale"  # too few coloured pixels: line art, monochrome pages, near-grey images
TOO_BRIGHT = "too_bright"  # mean brightness above --max-brightness (high-key, mostly blank)
TOO_DARK = "too_dark"  # mean brightness below --min-brightness (low-key)
NO_FACE = "no_face"  # --crop face and the cascade found no face
NEAR_DUPLICATE = "near_duplicate"  # perceptual hash within --near-duplicate-distance of a kept image

# ----------------------------------------------------------------- shard (shards.parquet)
NO_LINES = "no_lines"  # no line art of the chosen methods for this image

# ----------------------------------------------------------------- eval (report.json, unscored samples)
MISSING_FROM_SHARD = "missing_from_shard"  # listed in a shard's sidecar but never read from its tar
MISSING_MEMBER = "missing_member"  # the tar holds the sample without a member eval needs

# ----------------------------------------------------------------- import pairs (imports.parquet)
# A pair is a colour image and its line drawing (sketch); besides these, the colour half gets
# prepare's reasons (decode_error, too_large, too_small, aspect_ratio, grayscale, too_bright,
# too_dark) and `duplicate` (same colour bytes as a kept pair).
MISSING_COLOR = "missing_color"  # folders layout: a sketch file with no colour file of the same name
MISSING_SKETCH = "missing_sketch"  # folders layout: a colour file with no sketch file of the same name
AMBIGUOUS_PAIR = "ambiguous_pair"  # folders layout: two files of one folder share a name (001.png, 001.jpg)
SIZE_MISMATCH = "size_mismatch"  # the colour and the sketch differ in width or height
ODD_WIDTH = "odd_width"  # side-by-side layout: an odd width cannot be split into two equal halves
SKETCH_NOT_GREY = "sketch_not_grey"  # the sketch has coloured pixels: not line art
HALVES_SWAPPED = "halves_swapped"  # the colour half is grey and the sketch half coloured: wrong --order or folders
