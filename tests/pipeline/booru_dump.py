"""A generated board dump for the `pipe import booru` tests: Danbooru API records plus small files.

One post in ten of each kind of trouble: a missing file, a wrong md5, a filtered rating, tags the
query does not match, a reupload of an earlier post's bytes, a declared size under --min-side, a
video extension. `expected_rows` says, independently of the importer, what each post must get.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

KINDS = ("ok", "missing", "wrong_md5", "rating_e", "other_tags", "reupload", "small", "video", "png", "ok")


@dataclass
class DumpPost:
    id: int
    kind: str
    body: bytes
    ext: str

    @property
    def md5(self) -> str:
        return hashlib.md5(self.body).hexdigest()  # noqa: S324


def tiny_image(seed: int, ext: str) -> bytes:
    """A 24x24 image of noise: distinct bytes per seed, small enough for thousands of posts."""
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    ok, data = cv2.imencode(f".{ext}", pixels)
    assert ok
    return data.tobytes()


def dump_posts(count: int, first_id: int = 10_000) -> list[DumpPost]:
    """Posts in the dump's order (ids descending, as the board lists them)."""
    posts: list[DumpPost] = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        ext = "png" if kind == "png" else "jpg"
        body = posts[index - 5].body if kind == "reupload" else tiny_image(index, ext)
        posts.append(DumpPost(first_id - index, kind, body, "mp4" if kind == "video" else ext))
    return posts


def api_record(post: DumpPost, file_url: str | None = None) -> dict:
    """The post as Danbooru's API (and the Danbooru20xx metadata) writes it."""
    declared_md5 = hashlib.md5(post.body + b"!").hexdigest() if post.kind == "wrong_md5" else post.md5  # noqa: S324
    side = 300 if post.kind == "small" else 600
    return {
        "id": post.id, "md5": declared_md5, "file_ext": post.ext, "image_width": side, "image_height": side + 8,
        "file_size": len(post.body), "rating": "e" if post.kind == "rating_e" else "g",
        "tag_string": "landscape" if post.kind == "other_tags" else f"1girl solo tag_{post.id % 7}",
        "tag_string_artist": f"artist_{post.id % 3}", "tag_string_character": "", "source": f"https://example.invalid/{post.id}",
        "file_url": file_url or f"https://cdn.donmai.us/original/{post.md5[:2]}/{post.md5}.{post.ext}",
        "score": 3, "fav_count": 1, "is_deleted": False,  # fields pipe does not keep
    }


def write_dump(folder: Path, posts: list[DumpPost], records: list[dict] | None = None, layout: str = "danbooru20xx") -> Path:
    """The files (but those of `missing` posts) and posts.json as JSON lines; returns the metadata file."""
    for post in posts:
        if post.kind == "missing":
            continue
        directory = folder / "original" / f"{post.id % 1000:04d}" if layout == "danbooru20xx" else folder
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{post.id}.{post.ext}").write_bytes(post.body)
    metadata = folder / "metadata" / "posts.json"
    metadata.parent.mkdir(parents=True, exist_ok=True)
    records = records if records is not None else [api_record(post) for post in posts]
    metadata.write_text("".join(json.dumps(record) + "\n" for record in records))
    return metadata


_OUTCOMES = {
    "missing": ("rejected", "missing_file"), "wrong_md5": ("rejected", "md5_mismatch"), "rating_e": ("rejected", "rating_filtered"),
    "small": ("rejected", "too_small"), "video": ("rejected", "unsupported_ext"), "reupload": ("rejected", "duplicate"),
    "ok": ("ok", None), "png": ("ok", None),
}


def expected_rows(posts: list[DumpPost]) -> dict[int, tuple[str, str | None]]:
    """{post id: (status, reason)} for `--tags 1girl` and the crawl's defaults; no entry: no row."""
    return {post.id: _OUTCOMES[post.kind] for post in posts if post.kind != "other_tags"}
