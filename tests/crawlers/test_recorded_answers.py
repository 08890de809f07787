"""Crawls of real boards' recorded answers (XML: Gelbooru 0.2, Danbooru, Moebooru, Danbooru 1.x; JSON:
Danbooru, Safebooru) served on 127.0.0.1: every post's status, reason and metadata; `--format` and
`--api-path`; what a JSON crawl says when the board answers XML. Origins of the recordings: tests/crawlers/answers/README.md."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from crawlers.config import CrawlConfig, Politeness
from crawlers.sites import resolve_site
from manifests.ledger import Ledger
from manifests.schema import RAW
from pipeline.cli import main
from pipeline.crawl.stage import run_crawl
from tests.crawlers.recorded_board import RECORDED_HOST, RecordedBoard, recorded

FAST = Politeness(request_interval=0.0, backoff_base=0.1, retries=1)


def crawl(board: RecordedBoard, site: str, root: Path, **options):
    config = CrawlConfig(site=resolve_site(site, board.root), root=root, tags="1girl", politeness=FAST, progress=False, **options)
    return run_crawl(config)


def rows_of(root: Path) -> dict[int, dict]:
    rows = Ledger(root, RAW).read().to_pylist()
    assert len({row["post"] for row in rows}) == len(rows), "one row per post"
    return {row["post_id"]: row for row in rows}


def attribute_posts(name: str, root_url: str) -> dict[int, dict]:
    """The recording's `<post .../>` attributes, read here independently of the crawler."""
    tree = ET.fromstring(recorded(name).replace(RECORDED_HOST, root_url).encode())
    return {int(post.get("id")): dict(post.attrib) for post in tree.iter("post")}


def assert_metadata_is_the_recordings(rows: dict[int, dict], posts: dict[int, dict], site: str) -> None:
    assert set(rows) == set(posts), "every recorded post has a row"
    for post_id, post in posts.items():
        row = rows[post_id]
        assert row["post"] == f"{site}:{post_id}" and row["site"] == site
        assert row["md5"] == post["md5"] and row["file_url"] == post["file_url"]
        assert (row["width"], row["height"]) == (int(post["width"]), int(post["height"]))
        assert row["tags"] == " ".join(post["tags"].split())
        assert row["source"] == (post["source"] or None)


def test_gelbooru02_xml_with_old_rating_letters(tmp_path):
    """Gelbooru's 2017 DAPI XML: ratings `s` (safe) are g, `&amp;` in a tag is `&`, no `json=1` asked."""
    with RecordedBoard("/index.php", "gelbooru02_2017.xml", "xml") as board:
        report = crawl(board, "gelbooru02", tmp_path, api_format="xml", min_side=700, exts=("jpg",))
        asked = [r.query for r in board.requests if r.path == "/index.php"]
    assert report.error is None, report.error
    rows = rows_of(tmp_path)
    assert {i: (r["status"], r["reason"]) for i, r in rows.items()} == {
        3889506: ("rejected", "md5_mismatch"),  # 880x863 jpg: downloaded, our bytes are not the real file
        3889505: ("rejected", "too_small"),  # 575x800 under --min-side 700, never fetched
        3889503: ("rejected", "md5_mismatch"),
        3889502: ("rejected", "unsupported_ext"),  # png, --exts jpg
    }
    assert {r["rating"] for r in rows.values()} == {"g"}
    assert {r["file_ext"] for r in rows.values()} == {"jpg", "png"}
    assert_metadata_is_the_recordings(rows, attribute_posts("gelbooru02_2017.xml", board.root), "gelbooru02")
    tags = rows[3889503]["tags"].split()
    assert "luck_&_logic" in tags and "hand_on_another's_chest" in tags
    assert [q["pid"] for q in asked] == ["0", "1"] and not any("json" in q for q in asked)


def test_danbooru_posts_xml(tmp_path):
    with RecordedBoard("/posts.xml", "danbooru_2018.xml", "xml") as board:
        report = crawl(board, "danbooru", tmp_path, api_format="xml")
        paths = board.api_paths()
    assert report.error is None, report.error
    row = rows_of(tmp_path)[3282915]
    assert (row["status"], row["reason"]) == ("rejected", "md5_mismatch")
    assert row["md5"] == "f1244a1bd824ad8b01aabec23dcca2ab" and row["file_ext"] == "jpg" and row["file_size"] == 66116
    assert (row["width"], row["height"], row["rating"]) == (740, 797, "s")
    assert row["tags"].startswith("1girl anger_vein angry artist_request") and row["tags"].endswith("st_ar-15_(girls_frontline) translated")
    assert row["artist"] is None and row["characters"] == "st_ar-15_(girls_frontline)"
    assert row["source"] == "https://blog.naver.com/animalking/221192055608"
    assert row["file_url"] == f"{board.root}/data/f1244a1bd824ad8b01aabec23dcca2ab.jpg"
    assert paths == ["/posts.xml", "/posts.xml"]


def test_moebooru_post_xml(tmp_path):
    with RecordedBoard("/post.xml", "moebooru_yandere_2017.xml", "xml") as board:
        report = crawl(board, "yandere", tmp_path, api_format="xml")
    assert report.error is None, report.error
    rows = rows_of(tmp_path)
    assert {i: (r["status"], r["reason"], r["rating"]) for i, r in rows.items()} == {
        431721: ("rejected", "rating_filtered", "q"),
        396376: ("rejected", "md5_mismatch", "g"),  # Moebooru's s is "safe": Danbooru's g
    }
    assert rows[431721]["file_size"] == 8034985
    assert_metadata_is_the_recordings(rows, attribute_posts("moebooru_yandere_2017.xml", board.root), "yandere")


@pytest.mark.parametrize(("site", "options"), [("danbooru1", {}), ("moebooru", {"api_path": "/post/index.{ext}"})])
def test_danbooru1_board_by_engine_or_by_api_path(tmp_path, site, options):
    """behoimi (Danbooru 1.x) at /post/index.xml: the danbooru1 engine, or moebooru with --api-path."""
    with RecordedBoard("/post/index.xml", "danbooru1_behoimi_2016.xml", "xml") as board:
        report = crawl(board, site, tmp_path, api_format="xml", ratings=("g",), max_file_mb=0.2, **options)
        asked = [(r.path, r.query.get("page"), r.query.get("limit")) for r in board.requests if "index" in r.path]
    assert report.error is None, report.error
    rows = rows_of(tmp_path)
    assert {i: (r["status"], r["reason"]) for i, r in rows.items()} == {
        631557: ("rejected", "too_large"),  # declares 223,290 bytes, over --max-file-mb 0.2
        631556: ("rejected", "md5_mismatch"),
        631551: ("rejected", "too_large"),
        631541: ("rejected", "too_large"),
    }
    assert {r["rating"] for r in rows.values()} == {"g"}
    assert_metadata_is_the_recordings(rows, attribute_posts("danbooru1_behoimi_2016.xml", board.root), site)
    assert asked == [("/post/index.xml", "1", "100"), ("/post/index.xml", "2", "100")]


def test_auto_reads_an_xml_answer_to_a_json_request(tmp_path):
    with RecordedBoard("/index.php", "gelbooru02_2017.xml", "xml", content_type="text/xml") as board:
        report = crawl(board, "gelbooru02", tmp_path, api_format="auto")
        asked = [r.query for r in board.requests if r.path == "/index.php"]
    assert report.error is None and len(rows_of(tmp_path)) == 4
    assert asked[0]["json"] == "1"


def test_a_json_crawl_of_an_xml_board_says_it_got_xml(tmp_path, capsys):
    with RecordedBoard("/index.php", "gelbooru02_2017.xml", "xml", content_type="text/xml") as board:
        code = main(["crawl", "gelbooru02", str(tmp_path), "--tags", "1girl", "--root", board.root, "--interval", "0",
                     "--retries", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    line = next(line for line in err.splitlines() if line.startswith("error:"))
    assert "expected JSON, got XML (Content-Type text/xml)" in line and "--format xml" in line
    assert not Ledger(tmp_path, RAW).exists() or Ledger(tmp_path, RAW).read().num_rows == 0


def test_danbooru_posts_json(tmp_path):
    """Danbooru's own JSON record of a post (2025), as posts.json lists it: tags split by category, the
    file on the board's CDN (here the test board), the source kept as recorded."""
    with RecordedBoard("/posts.json", "danbooru_2025.json", "json") as board:
        report = crawl(board, "danbooru", tmp_path)
        paths = board.api_paths()
    assert report.error is None, report.error
    row = rows_of(tmp_path)[9969513]
    assert (row["post"], row["status"], row["reason"]) == ("danbooru:9969513", "rejected", "md5_mismatch")
    assert row["md5"] == "bd6cde0ec3b896251118d59b4d0e01b4" and row["file_ext"] == "jpg" and row["file_size"] == 277355
    assert (row["width"], row["height"], row["rating"]) == (2048, 2048, "g")
    assert row["tags"].split() == ["1girl", "blush", "bow-shaped_hair", "crying", "crying_with_eyes_open", "genshin_impact",
                                   "gradient_hair", "highres", "mikurumikurumi", "multicolored_hair", "pink_hair", "purple_eyes",
                                   "sangonomiya_kokomi", "simple_background", "tears", "trembling"]
    assert (row["artist"], row["characters"]) == ("mikurumikurumi", "sangonomiya_kokomi")
    assert row["source"] == "https://twitter.com/mimizinkomimi/status/1667444598267068417"
    assert row["file_url"] == f"{board.root}/original/bd/6c/bd6cde0ec3b896251118d59b4d0e01b4.jpg"
    assert paths == ["/posts.json", "/posts.json"]


def test_safebooru_json_with_escaped_slashes(tmp_path):
    """Safebooru's DAPI JSON (2025): a bare array, `\\/` in every URL, the rating as a word, `hash` as md5."""
    with RecordedBoard("/index.php", "safebooru_2025.json", "json") as board:
        report = crawl(board, "safebooru", tmp_path)
        asked = [r.query for r in board.requests if r.path == "/index.php"]
    assert report.error is None, report.error
    row = rows_of(tmp_path)[6077620]
    assert (row["post"], row["status"], row["reason"]) == ("safebooru:6077620", "rejected", "md5_mismatch")
    assert (row["md5"], row["file_ext"], row["rating"]) == ("563c6fbe5761ac4ba720ae0da9a15b8a", "jpg", "g")
    assert (row["width"], row["height"]) == (2160, 1215)
    tags = row["tags"].split()
    assert len(tags) == 42 and tags[:3] == ["6+girls", ":d", "animal_ears"] and "clumsy_nun_(diva)" in tags
    assert row["source"] == "https://www.threads.com/@diva_hyxpk/post/DOghRhxEgeM"
    assert row["file_url"] == f"{board.root}/images/539/6fef5929e6e09703b1493c6e5802fa5e4f189639.jpg"
    assert [q["pid"] for q in asked] == ["0", "1"] and all(q.get("json") == "1" for q in asked)
