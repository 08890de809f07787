"""`pipe demo`: `pipe run` on a built-in job over generated data, so a new user sees the whole flow.

The demo starts the project's fixture image board on 127.0.0.1 (it speaks Danbooru's API and
misbehaves the way real boards do) and runs a job against it: crawl, prepare, line art with every
method that needs no weights, shards with every hint scheme and draft artifact, a small draft model
and its refinement trained for a few steps on the CPU, and an evaluation report. Nothing leaves the
machine and no weights file is needed. It writes OUT/job.toml only over a job file it wrote itself
(recognized by its last line, a SHA-256 of the lines above), so a job of the user's own is never replaced
without --overwrite.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np

from pipeline.demo.fixture_site import FixtureSite, encode_image, expected_outcomes, generated_post, standard_catalogue
from manifests.layout import DatasetLayout
from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.demo.illustrations import OUTLINE, make_illustration
from synth.artifacts import ARTIFACT_ORDER
from synth.hints import HINTS

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


DEMO_JOB = """\
# The job `pipe demo` runs: copy it, point it at a real board and your own folders, run it with
# `pipe run JOB.toml` (every night from cron, say). Relative paths start at this file's folder.
dataset = "dataset"
seed = {seed}

[crawl]
# The demo's own board on 127.0.0.1, served by `pipe demo` only while it runs. For a real board, set
# site and tags, drop root and the fast politeness below (the defaults are polite), add contact.
site = "danbooru"
root = "{board}"
tags = "{tags}"
interval = 0.2
backoff = 0.25
autothrottle = false
connections = 4

[prepare]
workers = {workers}

[extract]
# Every method that needs no weights; add sketchkeras after `pipe weights fetch sketchkeras`.
method = "{methods}"
device = "cpu"
batch-size = 8
workers = {workers}

[shard]
# Every hint scheme and draft artifact, small shards so the demo has several.
lines = "{lines}"
gray-share = 0.1
equalize-share = 0.2
hints = "{hints}"
no-hint-share = 0.1
artifacts = "{artifacts}"
val = 0.2
shard-samples = 8
workers = {workers}

[train.draft]
# A small draft model for a few steps on the CPU: enough to see the whole flow, not a trained model.
# The published size: drop size, width and batch-size; steps are trained on each time the shards grow.
recipe = "xu2020"
steps = {steps}
size = 64
width = 0.25
batch-size = 4
content-loss = false
device = "cpu"
workers = 1
log-every = 5
sample-every = {steps}

[train.refine]
# Refinement trained on the drafts the draft stage above makes.
recipe = "xu2020"
drafts-from = "train.draft"
steps = {steps}
size = 64
width = 0.25
batch-size = 4
content-loss = false
device = "cpu"
workers = 1
log-every = 5
sample-every = {steps}

[eval]
# Scores train.draft and train.refine on the val split. FID, KID and C-FID need the Inception file:
# `pipe weights fetch inception`; without it they read n/a and every other score is computed.
hints = "none,cfid,points"
device = "cpu"
workers = 0
"""

DEMO_STEPS = 10


def demo_job(board: str, seed: int, workers: int) -> str:
    """The built-in job's text, pointed at the fixture board's URL."""
    return DEMO_JOB.format(
        board=board, seed=seed, workers=workers, tags=DEMO_TAGS, methods=",".join(DEMO_METHODS),
        lines=",".join(m for m in DEMO_METHODS if m != "gray"), hints=",".join(HINTS), artifacts=",".join(ARTIFACT_ORDER), steps=DEMO_STEPS,
    )


JOB_MARK = "# written by pipe demo, which replaces this file on its next run unless edited; sha256 of the lines above: "
DEMO_FILES = ("job.toml", "expected.json", "dataset")


def marked(job_text: str) -> str:
    """The job text with its last line saying pipe demo wrote it (and the hash that shows it is unedited)."""
    return f"{job_text}{JOB_MARK}{hashlib.sha256(job_text.encode()).hexdigest()}\n"


def is_demo_job(path: Path) -> bool:
    """Whether `path` is a job file `pipe demo` wrote and nobody edited since."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return False
    body, _, last = text.rstrip("\n").rpartition("\n")
    return last.startswith(JOB_MARK) and last[len(JOB_MARK):] == hashlib.sha256(f"{body}\n".encode()).hexdigest()


def check_demo_folder(out: Path, overwrite: bool) -> None:
    """Refuse (one line, before anything is written) a folder whose job.toml is not the demo's own, or that
    holds what the demo writes (expected.json, dataset/) without it; --overwrite replaces them."""
    job_file = out / "job.toml"
    if overwrite or is_demo_job(job_file):
        return
    if job_file.exists():
        raise PipeError(f"{job_file} is not the job file pipe demo wrote (yours, or edited since): pass --overwrite to replace it, "
                        "or give pipe demo another folder")
    present = [name for name in DEMO_FILES if (out / name).exists()]
    if present:
        raise PipeError(f"{out} holds {', '.join(present)} but no job file of pipe demo: pass --overwrite to run the demo there anyway, "
                        "or give pipe demo another folder")


def print_demo_job(seed: int, workers: int) -> None:
    print(demo_job("http://127.0.0.1:PORT", seed, workers), end="")


def run_demo(out: Path, images: int, seed: int, workers: int, overwrite: bool = False) -> int:
    """Serve the fixture board, write OUT/job.toml pointing at it, and run it as `pipe run` does."""
    from pipeline.job.run import run_job
    from pipeline.job.spec import read_job

    check_demo_folder(out, overwrite)
    root = out / "dataset"
    posts, prepare_expected = demo_catalogue(images, seed)
    crawl_expected = expected_outcomes(posts)
    expected = {
        f"danbooru:{post_id}": {"crawl": reason or status, "prepare": prepare_expected.get(post_id, "ok") if status == "ok" else None}
        for post_id, (status, reason) in crawl_expected.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    with FixtureSite("danbooru", posts, file_retry_after=1.0) as site:
        console.print(f"the demo board is at {site.root} (a local server speaking Danbooru's API); the job is {out / 'job.toml'}")
        job_file = out / "job.toml"
        job_file.write_text(marked(demo_job(site.root, seed, workers)))  # first: it marks the folder as the demo's
        (out / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True))
        job = read_job(job_file)
        code = run_job(job, job.stages)
    reports = sorted(DatasetLayout(root).reports.glob("*/report.html"), key=lambda p: p.stat().st_mtime)
    console.print(
        f"\n[bold]Where to look[/]\n"
        f"  originals:         {root / 'raw'}  (crawl ledger: {root / 'raw.parquet'})\n"
        f"  512x512 images:    {root / 'prepared'}  (ledger: {root / 'prepared.parquet'})\n"
        f"  line art:          {root / 'lines'}/<method>  (ledger: {root / 'lines.parquet'})\n"
        f"  WebDataset shards: {root / 'shards'}/{{train,val}}  (ledger: {root / 'shards.parquet'}; check: pipe shard {root} --verify)\n"
        f"  trained runs:      {root / 'runs'}/<name> (checkpoints, sample grids, metrics)\n"
        f"  report:            {reports[-1] if reports else root / 'reports'}\n"
        f"  the job it ran:    {out / 'job.toml'}; its record: {root / 'jobs'}/<time>/ (job.log, summary.json)\n"
        f"  what each post should become: {out / 'expected.json'}\n"
        f"  again at any time: pipe status {root}",
        highlight=False,
    )
    return code
