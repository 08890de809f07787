"""Benchmark `pipe crawl` against a plain `requests` loop, both downloading from the fixture board.

    python bench/crawl.py [--images 300] [--side 768] [--connections 8] [--file-delay 0.0]

The board (pipeline/demo/fixture_site.py, on 127.0.0.1) serves generated JPEG/PNG illustrations through
Danbooru's API. The crawl runs with politeness delays off (no API interval, no AutoThrottle; robots.txt
still read) and `--connections` parallel downloads. The baseline is what people write first: list the
pages with requests, then for each post GET the file, check its md5, and write it under its sha256.
`--file-delay` adds per-file server latency, which is where a crawler's parallel connections pay off
on a real CDN. Figures are images/second and their ratio, measured in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crawlers.config import CrawlConfig, Politeness  # noqa: E402
from pipeline.demo.fixture_site import FixtureSite, generated_post  # noqa: E402
from pipeline.crawl.stage import run_crawl  # noqa: E402
from crawlers.sites import resolve_site  # noqa: E402
from manifests.ledger import Ledger  # noqa: E402
from manifests.schema import RAW  # noqa: E402


def plain_requests_loop(root_url: str, out: Path) -> int:
    session = requests.Session()
    saved, cursor = 0, None
    while True:
        params = {"tags": "1girl solo", "limit": 200, **({"page": cursor} if cursor else {})}
        posts = session.get(f"{root_url}/posts.json", params=params, timeout=60).json()
        if not posts:
            return saved
        for post in posts:
            body = session.get(post["file_url"], timeout=60).content
            if hashlib.md5(body).hexdigest() != post["md5"]:  # noqa: S324
                continue
            key = hashlib.sha256(body).hexdigest()
            path = out / key[:2] / f"{key}.{post['file_ext']}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            saved += 1
        cursor = f"b{min(post['id'] for post in posts)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--side", type=int, default=768)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--file-delay", type=float, default=0.0)
    args = parser.parse_args()
    print(f"generating {args.images} images of {args.side}x{args.side} ...", flush=True)
    posts = [generated_post(100_000 - i, i, width=args.side, height=args.side, ext="png" if i % 5 == 0 else "jpg") for i in range(args.images)]
    megabytes = sum(len(p.body) for p in posts) / 1e6
    with tempfile.TemporaryDirectory() as scratch, FixtureSite("danbooru", posts, file_delay=args.file_delay) as site:
        scratch = Path(scratch)
        started = time.perf_counter()
        saved = plain_requests_loop(site.root, scratch / "plain")
        plain_seconds = time.perf_counter() - started
        assert saved == args.images, saved

        politeness = Politeness(request_interval=0.0, autothrottle=False, connections_per_host=args.connections, backoff_base=0.1)
        config = CrawlConfig(site=resolve_site("danbooru", site.root), root=scratch / "pipe", tags="1girl solo", politeness=politeness, progress=False)
        started = time.perf_counter()
        report = run_crawl(config)
        pipe_seconds = time.perf_counter() - started
        ok = sum(row["status"] == "ok" for row in Ledger(config.root, RAW).read().select(["status"]).to_pylist())
        assert ok == args.images and report.error is None, (ok, report)

    plain_rate, pipe_rate = args.images / plain_seconds, args.images / pipe_seconds
    print(f"{args.images} images, {megabytes:.1f} MB, file delay {args.file_delay * 1000:.0f} ms")
    print(f"plain requests loop:                 {plain_rate:7.1f} images/s")
    print(f"pipe crawl ({args.connections} connections, no delays): {pipe_rate:7.1f} images/s  ({pipe_rate / plain_rate:.2f}x)")
    print("(pipe's time includes starting its crawl process, robots.txt, verification and the ledger)")


if __name__ == "__main__":
    main()
