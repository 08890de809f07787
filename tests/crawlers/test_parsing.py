"""The pure parts of the crawler: reading each API dialect, the pre-download checks, verifying bytes."""

from __future__ import annotations

import email.utils
import hashlib
from pathlib import Path

import pytest

from manifests import reasons
from crawlers.config import CrawlConfig
from crawlers.engines import ApiError, spider_for
from crawlers.engines.base import unescape_fields
from crawlers.filters import rejection
from pipeline.demo.fixture_site import FixtureSite, encode_image, generated_post, standard_catalogue
from crawlers.middlewares import parse_retry_after
from crawlers.posts import clean_tags, extension_of, rating_from_moebooru, rating_from_word
from crawlers.sites import ESCAPED_FIELDS, SITES, resolve_site
from crawlers.verify import DownloadRejected, verify_download

FLAVOR_OF_SITE = {"danbooru": "danbooru", "safebooru": "safebooru", "gelbooru": "gelbooru", "yandere": "moebooru", "konachan": "moebooru"}


class _NoState:
    known_posts: set = set()


def _spider(site_name: str, root: str = "http://127.0.0.1:1"):
    config = CrawlConfig(site=resolve_site(site_name, root), root=Path("/nonexistent"), tags="1girl solo")
    return spider_for(config.site.engine)(config=config, state=_NoState())


@pytest.mark.parametrize("site_name", sorted(SITES))
def test_every_dialect_reads_back_what_the_fixture_board_lists(site_name):
    posts = standard_catalogue(good=3)
    board = FixtureSite(FLAVOR_OF_SITE[site_name], posts)
    board.root = "http://127.0.0.1:1"
    spider = _spider(site_name, board.root)
    for fixture in posts:
        post = spider.to_post(unescape_fields(board.record(fixture), ESCAPED_FIELDS[spider.site.engine]["json"]))
        assert post.post_id == fixture.id
        assert post.ledger_id == f"{site_name}:{fixture.id}"
        assert post.tags == fixture.tags  # HTML entities decoded, padding removed
        assert (post.width, post.height) == (fixture.width, fixture.height)
        if fixture.fault == "hidden":
            assert post.file_url is None and post.md5 is None
            continue
        assert post.file_ext == fixture.ext
        assert post.md5 == fixture.declared_md5
        assert post.file_url == f"{board.root}{fixture.file_path}" or post.file_url.endswith(f"/{fixture.file_name}")
        # Moebooru and Safebooru cannot say "sensitive"; the fixture only uses g and e there.
        if fixture.rating in ("g", "e"):
            assert post.rating == fixture.rating


def test_gelbooru_envelope_without_post_key_is_an_empty_page_and_safebooru_ends_with_an_empty_body():
    spider = _spider("gelbooru")
    assert spider.read_records({"@attributes": {"limit": 100, "offset": 0, "count": 0}}) == []
    assert spider.read_records({"@attributes": {}, "post": {"id": 5}}) == [{"id": 5}]
    assert spider.read_records(None) == []
    assert spider.read_records([]) == []
    assert spider.next_cursor(3, []) is None and spider.next_cursor(3, [{"id": 1}]) == 4
    with pytest.raises(ApiError):
        spider.read_records({"success": False, "message": "Missing authentication"})


def test_danbooru_pages_by_lowest_id_and_moebooru_by_page_number():
    danbooru = _spider("danbooru")
    assert danbooru.next_cursor(None, [{"id": 90}, {"id": 12}, {"id": 55}]) == "b12"
    assert danbooru.next_cursor("b12", []) is None
    assert "page=b12" in danbooru.page_url("b12") and "limit=200" in danbooru.page_url("b12")
    with pytest.raises(ApiError, match="more than 2 tags"):
        danbooru.read_records({"success": False, "message": "You cannot search for more than 2 tags at a time."})
    moebooru = _spider("yandere")
    assert moebooru.first_cursor() == 1 and moebooru.next_cursor(1, [{"id": 1}]) == 2
    assert "page=1" in moebooru.page_url(1) and "limit=100" in moebooru.page_url(1)


def test_ratings_tags_and_extensions_are_normalized():
    assert [rating_from_word(w) for w in ("general", "sensitive", "Questionable", "explicit", "safe", "?")] == ["g", "s", "q", "e", "g", None]
    assert [rating_from_moebooru(x) for x in ("s", "q", "e", "x")] == ["g", "q", "e", None]
    assert clean_tags("  don't_say_lazy  hatsune_miku ") == "don't_say_lazy hatsune_miku"
    assert extension_of("https://cdn.example/a/b/c.JPEG?download=1") == "jpg"
    assert extension_of(None) is None


def test_pre_download_checks_give_the_most_basic_reason_first():
    config = CrawlConfig(site=SITES["danbooru"], root=Path("/x"), tags="a", max_file_mb=1)
    post = _spider("danbooru").to_post(
        {"id": 1, "file_url": "https://cdn.donmai.us/a.png", "md5": "0" * 32, "file_ext": "png", "image_width": 800, "image_height": 900, "rating": "g", "file_size": 1000}
    )
    assert rejection(post, config) is None
    from dataclasses import replace

    assert rejection(replace(post, file_url=None, rating="e"), config)[0] == reasons.NO_FILE_URL
    assert rejection(replace(post, file_ext="webm", rating="e"), config)[0] == reasons.UNSUPPORTED_EXT
    assert rejection(replace(post, rating="q", width=10), config)[0] == reasons.RATING_FILTERED
    assert rejection(replace(post, width=511), config)[0] == reasons.TOO_SMALL
    assert rejection(replace(post, file_size=2 * 1024 * 1024), config)[0] == reasons.TOO_LARGE


def test_retry_after_takes_seconds_and_http_dates():
    assert parse_retry_after("7") == 7.0 and parse_retry_after("1.5") == 1.5
    now = 1_800_000_000.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_downloads_are_checked_by_content_not_by_name():
    good = generated_post(1, 3)
    md5 = hashlib.md5(good.body).hexdigest()  # noqa: S324
    image = verify_download(good.body, md5, ("jpg",), 1 << 30)
    assert (image.ext, image.width, image.height, image.size) == ("jpg", 640, 576, len(good.body))
    assert image.sha256 == hashlib.sha256(good.body).hexdigest()

    def reason(body, md5=None, exts=("jpg", "png", "gif"), max_bytes=1 << 30):
        with pytest.raises(DownloadRejected) as info:
            verify_download(body, md5, exts, max_bytes)
        return info.value.reason

    assert reason(good.body, "f" * 32) == reasons.MD5_MISMATCH
    assert reason(b"<!DOCTYPE html><html><body>503</body></html>") == reasons.NOT_AN_IMAGE
    assert reason(b'{"error": "not found"}') == reasons.NOT_AN_IMAGE
    assert reason(b"\x00\x00\x00\x18ftypmp42" + bytes(32)) == reasons.UNSUPPORTED_TYPE
    assert reason(b"PK\x03\x04" + bytes(32)) == reasons.UNSUPPORTED_TYPE
    assert reason(b"") == reasons.EMPTY_BODY
    assert reason(good.body, exts=("png",)) == reasons.UNSUPPORTED_TYPE
    assert reason(good.body, max_bytes=100) == reasons.TOO_LARGE
    rgb = __import__("numpy").zeros((8, 8, 3), "uint8")
    assert reason(encode_image(rgb, "gif")) == reasons.ANIMATED
