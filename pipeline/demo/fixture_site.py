"""A local image board for tests, the demo and the benchmark: speaks Danbooru, Gelbooru 0.2
(Gelbooru's and Safebooru's dialects) and Moebooru, serves images pipe generates, and misbehaves on
request the way real boards do.

It binds 127.0.0.1 only and logs every request it receives (arrival time, path, status), so tests can
measure what a crawler really did: gaps between API requests, waits after a 429.

Per-post faults (`FixturePost.fault`):
    hidden           listed without file URL and md5 (Danbooru's banned/gold-only posts)
    html             the file URL answers 200 with an HTML error page
    wrong_md5        the API declares an md5 the file does not have
    truncated        Content-Length promises the whole file; the connection closes halfway
    redirect         the file URL answers 302 to a CDN path
    robots           the file lives under a path robots.txt disallows
    http_404         the file URL answers 404
    flaky_500        the file answers 500 once, then the file
    retry_after_503  the file answers 503 with Retry-After once, then the file
Site faults (`FixtureSite` arguments): a 429 with Retry-After on the first API request, a 500 on the
first request for page 2, 410 for numbered pages past N, 422 for more tags than allowed.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np
from PIL import Image

from pipeline.demo.illustrations import make_illustration

FLAVORS = ("danbooru", "gelbooru", "safebooru", "moebooru")
ROBOTS_DISALLOWED_PREFIX = "/private/"
_GELBOORU_WORDS = {"g": "general", "s": "sensitive", "q": "questionable", "e": "explicit"}
# Safebooru still says "safe" for what Danbooru calls general.
_SAFEBOORU_WORDS = {"g": "safe", "s": "questionable", "q": "questionable", "e": "explicit"}
_MOEBOORU_LETTERS = {"g": "s", "s": "q", "q": "q", "e": "e"}


@dataclass
class FixturePost:
    id: int
    body: bytes
    ext: str
    width: int
    height: int
    rating: str = "g"  # Danbooru's letters; each dialect renders its own form
    tags: str = "1girl solo"
    artist: str | None = None
    characters: str | None = None
    source: str | None = None
    fault: str | None = None

    @property
    def real_md5(self) -> str:
        return hashlib.md5(self.body).hexdigest()  # noqa: S324

    @property
    def declared_md5(self) -> str | None:
        if self.fault == "hidden":
            return None
        if self.fault == "wrong_md5":
            return hashlib.md5(self.body + b"!").hexdigest()  # noqa: S324
        return self.real_md5

    @property
    def file_name(self) -> str:
        return f"{self.real_md5}.{self.ext}"

    @property
    def file_path(self) -> str:
        if self.fault == "redirect":
            return f"/redirect/{self.file_name}"
        if self.fault == "robots":
            return f"{ROBOTS_DISALLOWED_PREFIX}{self.file_name}"
        return f"/data/{self.file_name}"


@dataclass
class LoggedRequest:
    time: float  # time.monotonic() at arrival
    path: str
    query: dict[str, str]
    status: int = 0

    @property
    def is_api(self) -> bool:
        return self.path in ("/posts.json", "/index.php", "/post.json")


def encode_image(rgb: np.ndarray, ext: str) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if ext == "gif":
        frames = [Image.fromarray(rgb), Image.fromarray(255 - rgb)]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        return buffer.getvalue()
    params = [cv2.IMWRITE_JPEG_QUALITY, 90] if ext == "jpg" else []
    ok, data = cv2.imencode(f".{ext}", bgr, params)
    if not ok:
        raise ValueError(f"cannot encode .{ext}")
    return data.tobytes()


def generated_post(post_id: int, seed: int, width: int = 640, height: int = 576, ext: str = "jpg", **fields) -> FixturePost:
    """A post whose file is a generated illustration (same seed, same bytes)."""
    rgb = make_illustration(np.random.default_rng(seed), width, height)
    return FixturePost(id=post_id, body=encode_image(rgb, ext), ext=ext, width=width, height=height, **fields)


def standard_catalogue(seed: int = 0, good: int = 12) -> list[FixturePost]:
    """`good` plain posts plus one post per misbehaviour and per pre-download rejection, ids descending
    in listing order. The tests and `pipe demo` crawl this."""
    posts: list[FixturePost] = []
    next_id = 1000
    for index in range(good):
        ext = "png" if index % 3 == 0 else "jpg"
        posts.append(generated_post(next_id, seed * 1000 + index, ext=ext, artist=f"artist_{index % 3}", characters="hatsune_miku" if index % 2 else None, tags=f"1girl solo {'smile' if index % 2 else 'open_mouth'} don't_stop", source=f"https://example.invalid/art/{next_id}"))
        next_id -= 1
    for fault in ("hidden", "html", "wrong_md5", "truncated", "redirect", "robots", "http_404", "flaky_500", "retry_after_503"):
        posts.append(generated_post(next_id, seed * 1000 + 500 + next_id % 97, fault=fault, tags=f"1girl solo fault_{fault}"))
        next_id -= 1
    # Rejected from the API record alone.
    posts.append(generated_post(next_id, seed * 1000 + 600, width=320, height=400, tags="1girl solo thumbnail"))
    next_id -= 1
    posts.append(generated_post(next_id, seed * 1000 + 601, rating="e", tags="1girl solo explicit_one"))
    next_id -= 1
    video = FixturePost(id=next_id, body=b"\x00\x00\x00\x18ftypmp42" + bytes(64), ext="mp4", width=1280, height=720, tags="1girl solo video")
    posts.append(video)
    next_id -= 1
    posts.append(generated_post(next_id, seed * 1000 + 602, ext="gif", tags="1girl solo animated"))
    next_id -= 1
    # The same bytes as the first post, listed later: a duplicate by md5.
    first = posts[0]
    posts.append(FixturePost(id=next_id, body=first.body, ext=first.ext, width=first.width, height=first.height, tags="1girl solo reupload"))
    return posts


class FixtureSite:
    """`with FixtureSite("danbooru", posts) as site:` serves on `site.root` until the block ends."""

    handler_class: type = None  # type: ignore[assignment] - `_Handler`, set below its definition; tests subclass it

    def __init__(
        self,
        flavor: str,
        posts: list[FixturePost],
        *,
        api_retry_after: float | None = None,
        api_500_on_page_2: bool = False,
        gone_after_page: int | None = None,
        max_tags: int | None = None,
        file_retry_after: float = 1.0,
        file_delay: float = 0.0,
    ) -> None:
        if flavor not in FLAVORS:
            raise ValueError(f"flavor must be one of {FLAVORS}")
        self.flavor = flavor
        self.posts = sorted(posts, key=lambda p: -p.id)  # boards list newest first
        self.api_retry_after = api_retry_after
        self.api_500_on_page_2 = api_500_on_page_2
        self.gone_after_page = gone_after_page
        self.max_tags = max_tags
        self.file_retry_after = file_retry_after
        # Seconds each file response waits: a slow CDN, so tests can stop a crawl halfway.
        self.file_delay = file_delay
        self.requests: list[LoggedRequest] = []
        self.faulted: set[str] = set()  # one-shot faults already served
        self._lock = threading.Lock()
        self._files: dict[str, FixturePost] = {}
        self._index(self.posts)
        self._server: ThreadingHTTPServer | None = None
        self.root = ""

    def _index(self, posts: list[FixturePost]) -> None:
        for post in posts:
            self._files[post.file_path] = post
            self._files[f"/cdn/{post.file_name}"] = post
            self._files[f"/images/{_safebooru_directory(post)}/{post.file_name}"] = post

    def add_posts(self, posts: list[FixturePost]) -> None:
        """New uploads: the board lists them first from now on (a scheduled crawl's next run finds them)."""
        with self._lock:
            self._index(posts)
            self.posts = sorted(self.posts + list(posts), key=lambda p: -p.id)

    # ----------------------------------------------------------------- lifecycle
    def __enter__(self) -> FixtureSite:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        site = self

        class Handler(self.handler_class):
            fixture = site

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.root = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="fixture-site", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def api_requests(self) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self.requests if r.is_api]

    def once(self, name: str) -> bool:
        """True the first time `name` is asked about: for faults that happen once, then recover."""
        with self._lock:
            if name in self.faulted:
                return False
            self.faulted.add(name)
            return True

    # ----------------------------------------------------------------- API pages
    def matching(self, tags: str) -> list[FixturePost]:
        wanted = [t for t in tags.split() if ":" not in t]
        return [p for p in self.posts if all(t in p.tags.split() for t in wanted)]

    def record(self, post: FixturePost) -> dict:
        url = None if post.fault == "hidden" else f"{self.root}{post.file_path}"
        md5 = post.declared_md5
        if self.flavor == "danbooru":
            record = {
                "id": post.id, "image_width": post.width, "image_height": post.height, "file_ext": post.ext,
                "file_size": len(post.body), "rating": post.rating, "tag_string": post.tags,
                "tag_string_artist": post.artist or "", "tag_string_character": post.characters or "",
                "source": post.source or "", "md5": md5, "file_url": url, "large_file_url": url,
            }
            if post.fault == "hidden":
                for key in ("md5", "file_url", "large_file_url"):
                    del record[key]
            return record
        if self.flavor == "gelbooru":
            return {
                "id": post.id, "md5": md5 or "", "file_url": url or "", "width": post.width, "height": post.height,
                "rating": _GELBOORU_WORDS[post.rating], "tags": html.escape(post.tags, quote=True).replace("&#x27;", "&#039;"),
                "source": post.source or "", "image": post.file_name, "directory": "",
            }
        if self.flavor == "safebooru":
            record = {
                "id": post.id, "hash": md5, "directory": _safebooru_directory(post), "image": post.file_name, "sample": False,
                "width": post.width, "height": post.height, "rating": _SAFEBOORU_WORDS[post.rating],
                "tags": f" {post.tags} ", "owner": "fixture", "source": post.source or "",
            }
            if post.fault == "hidden":
                del record["image"]
            return record
        return {
            "id": post.id, "md5": md5, "file_url": url, "file_ext": post.ext, "width": post.width, "height": post.height,
            "rating": _MOEBOORU_LETTERS[post.rating], "tags": post.tags, "source": post.source or "",
            "jpeg_url": url, "sample_url": url, "file_size": len(post.body),
        }


class _Server(ThreadingHTTPServer):
    # The default listen backlog of 5 drops SYNs when a crawler opens many connections at once, and
    # the kernel's SYN retries (1 s, 2 s, 4 s) would then dominate every measurement.
    request_queue_size = 128


def _safebooru_directory(post: FixturePost) -> str:
    """Safebooru files live under /images/<directory>/; the robots fault puts one in a disallowed one."""
    return "private" if post.fault == "robots" else str(post.id % 7)


class _Handler(BaseHTTPRequestHandler):
    fixture: FixtureSite
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle's algorithm on, each response would
    # wait for the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        entry = LoggedRequest(time.monotonic(), parts.path, query)
        with self.fixture._lock:
            self.fixture.requests.append(entry)
        entry.status = self._route(parts.path, query)

    # ----------------------------------------------------------------- routing
    def _route(self, path: str, query: dict[str, str]) -> int:
        site = self.fixture
        if path == "/robots.txt":
            rules = f"User-agent: *\nDisallow: {ROBOTS_DISALLOWED_PREFIX}\nDisallow: /images/private/\n"
            return self._send(200, rules.encode(), "text/plain")
        if path in ("/posts.json", "/index.php", "/post.json"):
            if site.api_retry_after is not None and site.once("api_429"):
                return self._send(429, b'{"success":false,"message":"Rate limited"}', headers={"Retry-After": f"{site.api_retry_after:g}"})
            return self._api(path, query)
        if path.startswith("/redirect/") or (path.startswith("/images/") and getattr(site._files.get(path), "fault", None) == "redirect"):
            return self._send(302, b"", headers={"Location": f"/cdn/{path.rsplit('/', 1)[1]}"})
        post = site._files.get(path)
        if post is None:
            return self._send(404, b"not found", "text/plain")
        return self._file(post, path)

    def _api(self, path: str, query: dict[str, str]) -> int:
        site = self.fixture
        expected = {"danbooru": "/posts.json", "gelbooru": "/index.php", "safebooru": "/index.php", "moebooru": "/post.json"}[site.flavor]
        if path != expected:
            return self._send(404, b'{"success":false,"message":"not found"}')
        tags = query.get("tags", "")
        if site.max_tags is not None and len(tags.split()) > site.max_tags:
            message = f"You cannot search for more than {site.max_tags} tags at a time."
            return self._send(422, json.dumps({"success": False, "message": message}).encode())
        limit = int(query.get("limit", 20))
        posts = site.matching(tags)
        page = query.get("page", "1") if site.flavor in ("danbooru", "moebooru") else query.get("pid", "0")
        if site.flavor == "danbooru" and page.startswith("b"):
            before = int(page[1:])
            chunk = [p for p in posts if p.id < before][:limit]
            number = None
        else:
            number = int(page) if site.flavor in ("danbooru", "moebooru") else int(page) + 1
            if site.gone_after_page is not None and number > site.gone_after_page:
                return self._send(410, b'{"success":false,"message":"You cannot go beyond page 1000."}')
            chunk = posts[(number - 1) * limit : number * limit]
        if site.api_500_on_page_2 and (number == 2 or (number is None and chunk and chunk[0] is not posts[0])) and site.once("api_500"):
            return self._send(500, b'{"success":false,"message":"Internal error"}')
        records = [site.record(p) for p in chunk]
        if site.flavor == "gelbooru":
            offset = ((number or 1) - 1) * limit
            payload: object = {"@attributes": {"limit": limit, "offset": offset, "count": len(posts)}}
            if records:
                payload["post"] = records  # type: ignore[index]
        elif site.flavor == "safebooru" and not records:
            return self._send(200, b"")  # Safebooru ends with an empty body
        else:
            payload = records
        return self._send(200, json.dumps(payload).encode())

    def _file(self, post: FixturePost, path: str) -> int:
        site = self.fixture
        if site.file_delay:
            time.sleep(site.file_delay)
        if post.fault == "html":
            return self._send(200, b"<!DOCTYPE html><html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", "text/html")
        if post.fault == "http_404":
            return self._send(404, b"<html>gone</html>", "text/html")
        if post.fault == "flaky_500" and site.once(f"500:{post.id}"):
            return self._send(500, b"oops", "text/plain")
        if post.fault == "retry_after_503" and site.once(f"503:{post.id}"):
            return self._send(503, b"busy", "text/plain", headers={"Retry-After": f"{site.file_retry_after:g}"})
        content_type = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}.get(post.ext, "application/octet-stream")
        if post.fault == "truncated":
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(post.body)))
            self.end_headers()
            self.wfile.write(post.body[: len(post.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return 200
        return self._send(200, post.body, content_type)

    def _send(self, status: int, body: bytes, content_type: str = "application/json", headers: dict | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        return status


FixtureSite.handler_class = _Handler

__all__ = ["FLAVORS", "FixturePost", "FixtureSite", "LoggedRequest", "generated_post", "standard_catalogue"]


_FAULT_OUTCOMES = {
    None: ("ok", None),
    "hidden": ("rejected", "no_file_url"),
    "html": ("rejected", "not_an_image"),
    "wrong_md5": ("rejected", "md5_mismatch"),
    "truncated": ("failed", "truncated"),
    "redirect": ("ok", None),
    "robots": ("rejected", "robots_disallowed"),
    "http_404": ("rejected", "http_404"),
    "flaky_500": ("ok", None),
    "retry_after_503": ("ok", None),
}


def expected_outcomes(
    posts: list[FixturePost], exts: tuple[str, ...] = ("jpg", "png", "webp"), ratings: tuple[str, ...] = ("g", "s"), min_side: int = 512
) -> dict[int, tuple[str, str | None]]:
    """What a crawl with these options must record for each post: {post id: (status, reason)}.

    Written independently of the crawler's own checks, in the order the crawler applies them, so
    tests compare the ledger against what the site really served.
    """
    outcomes: dict[int, tuple[str, str | None]] = {}
    kept_md5: set[str] = set()
    for post in sorted(posts, key=lambda p: -p.id):  # listing order
        if post.fault == "hidden":
            outcomes[post.id] = ("rejected", "no_file_url")
        elif post.ext not in exts:
            outcomes[post.id] = ("rejected", "unsupported_ext")
        elif post.rating not in ratings:
            outcomes[post.id] = ("rejected", "rating_filtered")
        elif min(post.width, post.height) < min_side:
            outcomes[post.id] = ("rejected", "too_small")
        elif post.real_md5 in kept_md5 and post.fault is None:
            outcomes[post.id] = ("rejected", "duplicate")
        else:
            outcomes[post.id] = _FAULT_OUTCOMES[post.fault]
            if outcomes[post.id][0] == "ok":
                kept_md5.add(post.real_md5)
    return outcomes
