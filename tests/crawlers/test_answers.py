"""Reading API answers: XML that could expand entities or read files is refused unread; each API family
unescapes exactly the fields its board escapes; an empty or unreadable answer where posts were expected
is asked again, then fails the listing with one line; Gelbooru's old rating letters."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from scrapy.http import TextResponse

from crawlers.answers import UnsafeXml, parse_xml, read_answer
from crawlers.config import CrawlConfig, Politeness
from crawlers.engines import spider_for
from crawlers.posts import rating_from_word
from crawlers.sites import resolve_site
from manifests.ledger import Ledger
from manifests.schema import RAW
from pipeline.cli import main
from pipeline.crawl.stage import run_crawl
from pipeline.demo.fixture_site import FixtureSite, generated_post
from tests.crawlers.recorded_board import RecordedBoard

SECRET = "secret words of the crawling machine"
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE posts [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    + b"".join(b'<!ENTITY %c "&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;&%c;">' % ((c,) + (c - 1,) * 10) for c in range(ord("c"), ord("k")))
    + b']><posts count="1" offset="0"><post id="1" tags="&j;" md5="0" file_url="http://127.0.0.1/a.jpg"/></posts>'
)


def external_entity(path: Path) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE posts [<!ENTITY x SYSTEM "file://{path}">]>'
            '<posts count="1" offset="0"><post id="1" tags="&x;" md5="0" file_url="http://127.0.0.1/a.jpg"/></posts>').encode()


def _spider(site: str, **options):
    config = CrawlConfig(site=resolve_site(site, "http://127.0.0.1:1"), root=Path("/nonexistent"), tags="a", **options)

    class _NoState:
        known_posts: set = set()

    return spider_for(config.site.engine)(config=config, state=_NoState())


def _response(body: bytes, content_type: str = "application/json") -> TextResponse:
    return TextResponse("http://127.0.0.1:1/api", body=body, headers={"Content-Type": content_type})


def test_xml_with_an_external_or_expanding_entity_is_refused_unread(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    for body in (external_entity(secret), LAUGHS):
        started = time.perf_counter()
        with pytest.raises(UnsafeXml) as info:
            read_answer(body, "application/xml", "xml")
        assert time.perf_counter() - started < 0.5
        message = str(info.value)
        assert "\n" not in message and SECRET not in message and "refused an XML answer that declares a DOCTYPE" in message
    with pytest.raises(UnsafeXml):  # even auto, even without a Content-Type
        read_answer(LAUGHS, "", "auto")
    assert parse_xml(b'<posts count="0" offset="0"/>').get("count") == "0"


@pytest.mark.parametrize("kind", ["external", "laughs"])
def test_a_crawl_of_a_hostile_xml_board_stops_with_one_line_and_no_rows(tmp_path, capsys, kind):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    body = external_entity(secret) if kind == "external" else LAUGHS
    with RecordedBoard("/post.xml", body, "xml") as board:
        code = main(["crawl", "yandere", str(tmp_path / "root"), "--tags", "a", "--root", board.root, "--format", "xml",
                     "--interval", "0", "--no-progress"])
        asked = board.api_paths()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err and SECRET not in err
    assert "refused an XML answer that declares a DOCTYPE" in errors[0]
    assert asked == ["/post.xml"], "refused at once, not asked again"
    ledger = Ledger(tmp_path / "root", RAW)
    assert not ledger.exists() or ledger.read().num_rows == 0


def test_each_api_unescapes_exactly_the_fields_its_board_escapes():
    danbooru = _spider("danbooru").page_records(_response(b'[{"id": 1, "tag_string": "&notes a&amp;b", "source": "http://x/?a=1&amp;b=2"}]'))
    post = _spider("danbooru").to_post(danbooru[0])
    assert (post.tags, post.source) == ("&notes a&amp;b", "http://x/?a=1&amp;b=2")  # Danbooru stores what was typed
    moebooru = _spider("yandere").page_records(_response(b'[{"id": 2, "tags": "&notes", "source": "&lt;x&gt;"}]'))
    assert (moebooru[0]["tags"], moebooru[0]["source"]) == ("&notes", "&lt;x&gt;")
    gelbooru = _spider("gelbooru").page_records(
        _response(b'{"@attributes": {"count": 1}, "post": [{"id": 3, "tags": "don&#039;t &amp;notes", "source": "http://x/?a=1&amp;b=2"}]}')
    )
    post = _spider("gelbooru").to_post(gelbooru[0])
    assert (post.tags, post.source) == ("don't &notes", "http://x/?a=1&b=2")
    # Gelbooru's XML: the XML's own escaping is undone by the parser, nothing more.
    xml = _spider("gelbooru", api_format="xml").page_records(_response(b'<posts><post id="4" tags="a&amp;amp;b luck_&amp;_logic"/></posts>', "text/xml"))
    assert xml[0]["tags"] == "a&amp;b luck_&_logic"


def test_gelbooru_old_rating_letters_map_like_the_words():
    assert [rating_from_word(r) for r in ("s", "q", "e", "S", "safe", "sensitive", "x")] == ["g", "q", "e", "g", "g", "s", None]


def _gelbooru_json(tmp_path: Path, body: bytes, retries: int) -> tuple[int, list[str]]:
    with RecordedBoard("/index.php", body, "json") as board:
        code = main(["crawl", "gelbooru02", str(tmp_path), "--tags", "a", "--root", board.root, "--interval", "0",
                     "--retries", str(retries), "--backoff", "0", "--no-progress"])
        return code, board.api_paths()


@pytest.mark.parametrize(("body", "said"), [(b"", "is an empty body where posts were expected"), (b'"busy"', "is not a page of posts")])
def test_an_empty_or_non_list_first_page_is_asked_again_then_fails(tmp_path, capsys, body, said):
    code, asked = _gelbooru_json(tmp_path, body, retries=2)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and said in errors[0] and "asked 3 times" in errors[0]
    assert len(asked) == 3
    ledger = Ledger(tmp_path, RAW)
    assert not ledger.exists() or ledger.read().num_rows == 0


def _safebooru_crawl(root: Path, per_page: int):
    posts = [generated_post(100 - i, 30 + i, width=520, height=520) for i in range(4)]
    with FixtureSite("safebooru", posts) as site:  # answers an empty body past its last post
        config = CrawlConfig(site=resolve_site("safebooru", site.root), root=root, tags="1girl solo", per_page=per_page,
                             politeness=Politeness(request_interval=0.0, backoff_base=0.1, retries=1), progress=False)
        report = run_crawl(config)
        return report, [r.query["pid"] for r in site.api_requests()]


def test_an_empty_body_after_a_full_page_fails_and_after_a_short_page_ends(tmp_path):
    report, pids = _safebooru_crawl(tmp_path / "full", per_page=2)  # 2 + 2, then an empty body
    assert report.error and "empty body where posts were expected" in report.error and "pid=2" in report.error
    assert pids == ["0", "1", "2", "2"]
    rows = Ledger(tmp_path / "full", RAW).read().to_pylist()
    assert sorted(r["post_id"] for r in rows) == [97, 98, 99, 100] and {r["status"] for r in rows} == {"ok"}
    report, pids = _safebooru_crawl(tmp_path / "short", per_page=3)  # 3 + 1, then an empty body: the end
    assert report.error is None and report.stop_reason == "listed every post of the query"
    assert pids == ["0", "1", "2"]


def test_a_fixed_format_names_what_came_instead():
    with pytest.raises(ValueError, match=r"expected XML, got JSON \(Content-Type application/json\): '\[\{\"id\": 1\}\]'; try --format json"):
        read_answer(b'[{"id": 1}]', "application/json", "xml")
    with pytest.raises(ValueError, match=r"not JSON .*Content-Type text/plain\): 'Service Unavailable'"):
        read_answer(b"Service Unavailable", "text/plain", "json")


@pytest.mark.parametrize(("option", "said"), [(["--format", "yaml"], "--format takes one of json, xml, auto"),
                                              (["--api-path", "post.json"], "--api-path must be a path on the board starting with /"),
                                              (["--api-path", "/post.json?x=1"], "(no query)")])
def test_a_bad_format_or_api_path_is_one_line(tmp_path, capsys, option, said):
    code = main(["crawl", "moebooru", str(tmp_path / "root"), "--tags", "a", "--root", "http://127.0.0.1:1", *option, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and said in err and "Traceback" not in err and not (tmp_path / "root").exists()


def test_an_html_page_is_named_as_one_and_the_site_record_says_the_format():
    for expected in ("json", "xml", "auto"):
        with pytest.raises(ValueError, match=r"got an HTML page \(Content-Type text/html\): '<!DOCTYPE html><title>Just a moment"):
            read_answer(b"<!DOCTYPE html><title>Just a moment...</title>", "text/html", expected)
    from dataclasses import replace

    from crawlers.sites import SITES

    xml_board = replace(SITES["gelbooru"], api_format="xml")
    spider = spider_for(xml_board.engine)(config=CrawlConfig(site=xml_board, root=Path("/x"), tags="a"), state=None)
    assert "json=" not in spider.page_url(0) and "pid=0" in spider.page_url(0)
    old_board = replace(SITES["konachan"], api_path="/post/index.{ext}")
    spider = spider_for(old_board.engine)(config=CrawlConfig(site=old_board, root=Path("/x"), tags="a", api_format="xml"), state=None)
    assert spider.page_url(1).startswith("https://konachan.com/post/index.xml?")
