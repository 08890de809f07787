"""What a board's API must not be able to make the crawler do: read local files, reach other hosts or
ports, drop the ledger with a bad post id, retry a pixel bomb forever; and a board that is not there.

One fixture board on 127.0.0.1 lists all of it beside good posts; a second server on another port
counts the requests it gets (it must get none)."""

from __future__ import annotations

import base64
import socket
import struct
import zlib
import numpy as np
import pytest

from crawlers.config import CrawlConfig, Politeness
from crawlers.sites import resolve_site
from manifests.ledger import Ledger
from manifests.schema import RAW
from pipeline.cli import main
from pipeline.crawl.stage import run_crawl
from pipeline.demo.fixture_site import FixturePost, FixtureSite, _Handler, encode_image, generated_post

FAST = Politeness(request_interval=0.0, backoff_base=0.1, retries=1)
SECRET = b"\x89PNG\r\n\x1a\n secret bytes of the crawling machine"


class _Handler302Away(_Handler):
    """The board, plus `/away/NAME`: a 302 to the same name on another server (`fixture.away_root`)."""

    def _route(self, path: str, query: dict[str, str]) -> int:
        if path.startswith("/away/"):
            return self._send(302, b"", headers={"Location": f"{self.fixture.away_root}/data/{path.rsplit('/', 1)[1]}"})
        return super()._route(path, query)


class HostileBoard(FixtureSite):
    """A Danbooru fixture whose records can be rewritten per post (file URL, id) by `overrides`."""

    handler_class = _Handler302Away

    def __init__(self, posts: list[FixturePost], overrides: dict[int, dict], away_root: str) -> None:
        super().__init__("danbooru", posts)
        self.overrides, self.away_root = overrides, away_root

    def record(self, post: FixturePost) -> dict:
        record = super().record(post)
        for key, value in self.overrides.get(post.id, {}).items():
            record[key] = value.format(root=self.root, away=self.away_root, name=post.file_name) if isinstance(value, str) else value
        return record


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height (the pixels themselves are never there)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def hostile_crawl(tmp_path_factory):
    """Crawl the hostile board once; the tests below read what it recorded and who was asked for what."""
    folder = tmp_path_factory.mktemp("hostile")
    secret = folder / "secret.png"
    secret.write_bytes(SECRET)
    huge = folder / "huge.png"
    with open(huge, "wb") as handle:  # 1 GB, sparse: cheap to make, ruinous to read
        handle.truncate(1 << 30)
    good = [generated_post(1000 - i, 10 + i) for i in range(3)]
    odd = [generated_post(990 - i, 20 + i) for i in range(14)]
    bombs = [FixturePost(970, png_header(100_000, 100_000), "png", 640, 576), FixturePost(969, png_header(12_000, 12_000), "png", 640, 576)]
    noise = np.random.default_rng(0).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)
    oversized = FixturePost(968, encode_image(noise, "png"), "png", 1100, 1100)  # about 3.6 MB, over --max-file-mb 2
    data_url = "data:image/png;base64," + base64.b64encode(generated_post(1, 1, ext="png").body).decode()
    overrides = {
        990: {"file_url": f"file://{secret}", "file_ext": "png"},
        989: {"file_url": "file:///etc/hostname", "file_ext": "png"},
        988: {"file_url": f"file://{huge}", "file_ext": "png"},
        987: {"file_url": "ftp://127.0.0.1:21/{name}"},
        986: {"file_url": data_url, "file_ext": "png"},
        985: {"file_url": "{away}/data/{name}"},  # the same host on another port
        983: {"file_url": "{root}/away/{name}"},  # on the board, redirecting to the other port
        982: {"id": 10**30},
        981: {"id": "12abc"},
        980: {"id": 979.5},
        979: {"id": True},
        978: {"id": -3},
        977: {"id": None},
        968: {"file_size": 1000},  # declared small: only the Content-Length tells
    }
    posts = good + odd + bombs + [oversized]
    with FixtureSite("danbooru", odd) as away:
        board = HostileBoard(posts, overrides, away.root)
        with board:
            port = board.root.rsplit(":", 1)[1]
            overrides[984] = {"file_url": f"http://127.0.0.2:{port}/data/{{name}}"}  # the board's port, another host
            config = CrawlConfig(site=resolve_site("danbooru", board.root), root=folder / "root", tags="1girl solo", politeness=FAST, progress=False, max_file_mb=2)
            report = run_crawl(config)
            board_requests = list(board.requests)
        away_requests = list(away.requests)
    rows = {row["post"]: row for row in Ledger(folder / "root", RAW).read().to_pylist()}
    names = [post.file_name for post in good + bombs + [oversized]]
    return {"served_names": names, "redirected_name": odd[990 - 983].file_name, "report": report, "rows": rows, "root": folder / "root", "away": away_requests, "board": board_requests, "secret": secret}


UNSAFE = {990: "file://", 989: "file:///etc/hostname", 988: "file://", 987: "ftp://", 986: "data:image/png", 985: "http://127.0.0.1:", 984: "http://127.0.0.2:"}


def test_file_ftp_data_and_other_host_urls_are_rejected_unsafe_and_never_requested(hostile_crawl):
    rows = hostile_crawl["rows"]
    assert hostile_crawl["report"].error is None
    for post_id, url_start in UNSAFE.items():
        row = rows[f"danbooru:{post_id}"]
        assert (row["status"], row["reason"]) == ("rejected", "unsafe_url"), (post_id, row["detail"])
        assert row["detail"].startswith(url_start) and row["file_url"] in row["detail"]
        assert row["path"] is None and row["key"] == ""
    assert all(rows[f"danbooru:{1000 - i}"]["status"] == "ok" for i in range(3))
    # No local file was read: not its bytes in a detail, not a copy under raw/.
    secret = hostile_crawl["secret"].read_bytes()
    kept = [p.read_bytes() for p in (hostile_crawl["root"] / "raw").rglob("*") if p.is_file()]
    assert len(kept) == 3 and secret not in kept
    assert not any("secret bytes" in (row["detail"] or "") for row in rows.values())
    # The other port never heard from the crawler: not the file, not a redirect's target, not robots.txt.
    assert hostile_crawl["away"] == []
    # The board itself served its API, its robots.txt, the good files, the bombs and one redirect.
    fetched = {r.path for r in hostile_crawl["board"]} - {"/robots.txt", "/posts.json"}
    assert fetched == {f"/data/{name}" for name in hostile_crawl["served_names"]} | {f"/away/{hostile_crawl['redirected_name']}"}


def test_a_redirect_off_the_board_is_rejected_unsafe_and_not_followed(hostile_crawl):
    row = hostile_crawl["rows"]["danbooru:983"]
    assert (row["status"], row["reason"]) == ("rejected", "unsafe_url"), row["detail"]
    assert row["detail"].startswith("redirected: http://127.0.0.1:") and "/data/" in row["detail"]
    assert hostile_crawl["away"] == []


def test_bad_post_ids_are_rejected_rows_and_the_crawl_keeps_its_ledger(hostile_crawl):
    rows = hostile_crawl["rows"]
    bad = {post: row for post, row in rows.items() if row["reason"] == "bad_post_id"}
    assert sorted(bad) == sorted(["danbooru:1000000000000000000000000000000", "danbooru:12abc", "danbooru:979.5", "danbooru:True", "danbooru:-3"] + [p for p in bad if "no-id-" in p])
    assert len(bad) == 6 and all(row["status"] == "rejected" and row["post_id"] is None for row in bad.values())
    assert "not a whole number" in bad["danbooru:12abc"]["detail"]
    assert len(rows) == 3 + 14 + 3  # every listed record has a row: none dropped


def test_a_pixel_bomb_header_is_rejected_too_large_not_failed(hostile_crawl):
    rows = hostile_crawl["rows"]
    huge, big = rows["danbooru:970"], rows["danbooru:969"]
    assert (huge["status"], huge["reason"]) == ("rejected", "too_large") and "pixels" in huge["detail"]
    assert (big["status"], big["reason"]) == ("rejected", "too_large")
    assert "12000x12000 = 144,000,000 pixels" in big["detail"]


def test_a_file_over_max_file_mb_is_refused_from_its_content_length(hostile_crawl):
    row = hostile_crawl["rows"]["danbooru:968"]
    assert (row["status"], row["reason"]) == ("rejected", "too_large"), row["detail"]
    assert row["path"] is None


def test_file_hosts_lets_a_named_cdn_serve_files(tmp_path):
    posts = [generated_post(50, 5)]
    with FixtureSite("danbooru", posts) as cdn, HostileBoard(posts, {50: {"file_url": "{away}/data/{name}"}}, cdn.root) as board:
        hosts = (cdn.root.split("//", 1)[1],)
        config = CrawlConfig(site=resolve_site("danbooru", board.root), root=tmp_path, tags="1girl solo", politeness=FAST, progress=False, file_hosts=hosts)
        run_crawl(config)
        cdn_paths = [r.path for r in cdn.requests]
    row = Ledger(tmp_path, RAW).read().to_pylist()[0]
    assert row["status"] == "ok" and f"/data/{posts[0].file_name}" in cdn_paths


def test_a_bad_file_hosts_entry_is_one_line_and_creates_nothing(tmp_path, capfd):
    root = tmp_path / "new"
    code = main(["crawl", "danbooru", str(root), "--tags", "a", "--file-hosts", "http://cdn.example/x", "--no-progress"])
    err = capfd.readouterr().err
    assert code == 2 and err.strip().splitlines() == ["error: --file-hosts takes host names (host, host:port or *.domain), got 'http://cdn.example/x'"]
    assert not root.exists()


def test_a_refused_port_is_one_line_nonzero_and_leaves_nothing(tmp_path, capfd):
    with socket.socket() as probe:  # a port nothing listens on once this closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    existing = tmp_path / "existing"
    existing.mkdir()
    for root in (tmp_path / "new", existing):
        code = main(["crawl", "danbooru", str(root), "--tags", "a", "--root", f"http://127.0.0.1:{port}", "--retries", "0", "--no-progress"])
        err = capfd.readouterr().err
        assert code == 2
        assert err.strip().splitlines() == [f"error: board not reachable at http://127.0.0.1:{port}: connection refused"]
    assert not (tmp_path / "new").exists() and list(existing.iterdir()) == []
