"""`pipe demo`: every stage that exists, run on generated data, so a new user sees the whole flow.

The demo starts the project's fixture image board on 127.0.0.1 (it speaks Danbooru's API and
misbehaves the way real boards do), crawls it with `pipe crawl`'s machinery, prepares what was
downloaded, extracts line art from it with every method that needs no weights, and packs shards
with every hint scheme and all draft artifacts. Nothing leaves the machine.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from crawlers.config import CrawlConfig, Politeness
from pipeline.demo.fixture_site import FixtureSite, encode_image, expected_outcomes, generated_post, standard_catalogue
from pipeline.crawl.report import print_crawl_report
from pipeline.crawl.stage import run_crawl
from crawlers.sites import resolve_site
from pipeline.console import console
from pipeline.demo.illustrations import OUTLINE, make_illustration
from pipeline.extract.config import ExtractConfig
from pipeline.extract.stage import run_extract
from pipeline.prepare.stage import PrepareConfig, PrepareStage
from pipeline.report import print_run_report
from pipeline.runner import RunnerConfig, run_stage
from pipeline.shard.cli_support import shards_table
from pipeline.shard.config import ShardConfig
from pipeline.shard.stage import run_shard
from synth.artifacts import ARTIFACT_ORDER
from synth.hints import HINTS
from synth.lines import LineAugment

DEMO_TAGS = "1girl solo"
DEMO_METHODS = ("xdog", "dilate", "canny", "highpass", "gray")


def demo_catalogue(images: int, seed: int):
    """The fixture board's posts, and what `pipe prepare` should make of the ones the crawl keeps."""
    posts = standard_catalogue(seed=seed, good=images)
    prepare_expected: dict[int, str] = {}
    next_id = min(p.id for p in posts) - 1
    rgb = make_illustration(np.random.default_rng(seed + 77), 900, 800)
    lines = np.where(np.abs(rgb.astype(int) - np.array(OUTLINE)).sum(2, keepdims=True) < 60, 0, 255).astype(np.uint8)
    extra = {
        "grayscale": generated_post(next_id, 0, width=900, height=800, ext="png", tags=f"{DEMO_TAGS} lineart"),
        "aspect_ratio": generated_post(next_id - 1, seed + 78, width=1800, height=600, tags=f"{DEMO_TAGS} wide"),
        "near_duplicate": generated_post(next_id - 2, seed + 77, width=900, height=800, tags=f"{DEMO_TAGS} reupload"),
        "ok": generated_post(next_id - 3, seed + 77, width=900, height=800, ext="png", tags=f"{DEMO_TAGS} original"),
    }
    extra["grayscale"].body = encode_image(np.repeat(lines, 3, 2), "png")
    # The near duplicate is the same picture as "ok", smaller and re-encoded as a lower-quality JPEG:
    # prepare keeps the larger original.
    smaller = cv2.resize(rgb, (720, 640), interpolation=cv2.INTER_AREA)
    extra["near_duplicate"].body = cv2.imencode(".jpg", cv2.cvtColor(smaller, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])[1].tobytes()
    extra["near_duplicate"].width, extra["near_duplicate"].height = 720, 640
    extra["ok"].body = encode_image(rgb, "png")
    for reason, post in extra.items():
        posts.append(post)
        prepare_expected[post.id] = reason
    return posts, prepare_expected


def run_demo(out: Path, images: int, seed: int, runner: RunnerConfig) -> None:
    root = out / "dataset"
    expected_file = out / "expected.json"
    posts, prepare_expected = demo_catalogue(images, seed)
    crawl_expected = expected_outcomes(posts)
    expected = {
        f"demo:{post_id}": {"crawl": reason or status, "prepare": prepare_expected.get(post_id, "ok") if status == "ok" else None}
        for post_id, (status, reason) in crawl_expected.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    expected_file.write_text(json.dumps(expected, indent=1, sort_keys=True))
    with FixtureSite("danbooru", posts, file_retry_after=1.0) as site:
        console.print(f"crawling the demo board at {site.root} (a local server speaking Danbooru's API)")
        config = CrawlConfig(
            site=replace(resolve_site("danbooru", site.root), name="demo"),
            root=root.resolve(),
            tags=DEMO_TAGS,
            politeness=Politeness(request_interval=0.2, backoff_base=0.25, autothrottle=False, connections_per_host=4),
        )
        report = run_crawl(config)
    print_crawl_report(report, config.root)
    stage = PrepareStage(source=root / "raw.parquet", root=root, config=PrepareConfig())
    print_run_report(run_stage(stage, root, runner, label="prepare"))
    # Every CPU method, so the demo shows what each line style looks like on the same images.
    extract = ExtractConfig(root=root.resolve(), methods=DEMO_METHODS, device="cpu", batch_size=8, workers=runner.workers)
    print_run_report(run_extract(extract))
    # Every hint scheme (one drawn per sample), a hint-free share, and the full erroneous draft.
    shard = ShardConfig(
        root=root.resolve(),
        lines=LineAugment(tuple((m, 1.0) for m in DEMO_METHODS if m != "gray"), gray_share=0.1, equalize_share=0.2),
        hints=tuple(HINTS),
        no_hint_share=0.1,
        artifacts=ARTIFACT_ORDER,
        val_fraction=0.2,
        max_samples=8,
        seed=seed,
        workers=runner.workers,
    )
    shard_report, states = run_shard(shard)
    print_run_report(shard_report)
    console.print(shards_table(states))
    console.print(
        f"\n[bold]Where to look[/]\n"
        f"  originals:         {root / 'raw'}  (crawl ledger: {root / 'raw.parquet'})\n"
        f"  512x512 images:    {root / 'prepared'}  (ledger: {root / 'prepared.parquet'})\n"
        f"  line art:          {root / 'lines'}/<method>  (ledger: {root / 'lines.parquet'})\n"
        f"  WebDataset shards: {root / 'shards'}/{{train,val}}  (ledger: {root / 'shards.parquet'}; check: pipe shard {root} --verify)\n"
        f"  what each post should become: {expected_file}\n"
        f"  again at any time: pipe status {root}"
    )
