"""Checks on a downloaded body before it is kept: is it an image, of an allowed type, the declared file?

Pure functions on bytes. Type comes from the file's own magic bytes, never from the URL or the
Content-Type header (boards serve HTML error pages with status 200 and `.jpg` URLs).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from manifests import reasons

# Magic bytes of still-image types pipe can prepare, with the extension files get on disk.
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)
# Things boards list next to images that are never kept, named for the ledger's detail.
_OTHER_MAGIC = (
    (b"\x1aE\xdf\xa3", "a WebM/Matroska video"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"FWS", "a Flash file"),
    (b"CWS", "a Flash file"),
    (b"ZWS", "a Flash file"),
)


class DownloadRejected(Exception):
    """A download that must not be kept; `reason` is a ledger code, `detail` says what was seen."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class VerifiedImage:
    sha256: str
    ext: str
    width: int
    height: int
    size: int


def sniff_type(body: bytes) -> str | None:
    """The image extension the bytes really are, or None when they are no image pipe knows."""
    for magic, ext in _IMAGE_MAGIC:
        if body.startswith(magic):
            return ext
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "webp"
    if body[4:8] == b"ftyp":
        return "avif" if body[8:12] in (b"avif", b"avis") else None
    return None


def describe_non_image(body: bytes) -> str:
    head = body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in head:
        return "an HTML page"
    if head.startswith((b"{", b"[")):
        return "a JSON document"
    if body[4:8] == b"ftyp":
        return "an MP4/QuickTime video"
    for magic, name in _OTHER_MAGIC:
        if body.startswith(magic):
            return name
    return f"unknown content starting {body[:8].hex(' ')}"


def verify_download(body: bytes, declared_md5: str | None, allowed_exts: tuple[str, ...], max_bytes: int) -> VerifiedImage:
    """The checked image, or DownloadRejected with the first reason it fails."""
    if not body:
        raise DownloadRejected(reasons.EMPTY_BODY, "the server answered 200 with an empty body")
    if len(body) > max_bytes:
        raise DownloadRejected(reasons.TOO_LARGE, f"{len(body):,} bytes, over the {max_bytes:,}-byte limit")
    ext = sniff_type(body)
    if ext is None:
        what = describe_non_image(body)
        reason = reasons.NOT_AN_IMAGE if "video" not in what and "archive" not in what and "Flash" not in what else reasons.UNSUPPORTED_TYPE
        raise DownloadRejected(reason, f"the body is {what} ({len(body):,} bytes)")
    if declared_md5:
        actual = hashlib.md5(body).hexdigest()  # noqa: S324 - the boards' own content id, not security
        if actual != declared_md5.lower():
            raise DownloadRejected(reasons.MD5_MISMATCH, f"declared md5 {declared_md5}, got {actual} ({len(body):,} bytes)")
    if ext not in allowed_exts:
        raise DownloadRejected(reasons.UNSUPPORTED_TYPE, f"the body is a {ext.upper()} image, not one of --exts {','.join(allowed_exts)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is checked below
            with Image.open(io.BytesIO(body)) as image:
                width, height = image.size
                animated = bool(getattr(image, "is_animated", False))
    except Image.DecompressionBombError as exc:
        # Pillow refuses headers over twice its pixel limit before giving the size; its message has it.
        raise DownloadRejected(reasons.TOO_LARGE, f"the {ext.upper()} header declares too many pixels: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DownloadRejected(reasons.NOT_AN_IMAGE, f"{ext.upper()} header does not parse: {exc}") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and width * height > limit:
        raise DownloadRejected(reasons.TOO_LARGE, f"the {ext.upper()} header declares {width}x{height} = {width * height:,} pixels, over the {limit:,}-pixel decoding limit")
    if animated:
        raise DownloadRejected(reasons.ANIMATED, f"an animated {ext.upper()}; only still images are kept")
    return VerifiedImage(sha256=hashlib.sha256(body).hexdigest(), ext=ext, width=width, height=height, size=len(body))
