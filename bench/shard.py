"""Benchmark `pipe shard` against decoding and encoding the same members alone, in the same run.

    python bench/shard.py [--images 200] [--size 512] [--workers 2] [--hints patches]
                          [--artifacts paste,warp,spray] [--format png,jpeg] [--json OUT.json]

Prepares generated illustrations (or `--source` ones) with xdog lines, then for each shard format
(`png`: every member PNG; `jpeg`: `pipe shard --jpeg color,draft`; `lean`: that and `--lean-train`,
train samples without hint and draft, which `pipe train --synth device` draws on its device):
  - codec only: one process reads each sample's colour and line files, decodes them, and encodes the
    members the stage writes (line, hint, draft as PNG or JPEG, colour as JPEG when the format says
    so), with nothing synthesized: the cost no shard stage can avoid;
  - the stage: `pipe shard` with --workers processes, from its start to its last finished shard
    (worker start-up, the dataset histogram with histogram hints, sidecars and ledger included);
  - the per-sample cost in one process (`synthesize` alone, no tar) and where it goes: a cProfile
    pass splits it into reading, line art, hints, each artifact, and member encoding.
Absolute rates belong to the machine they were taken on; compare the ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.images import encode_jpeg, encode_png  # noqa: E402
from manifests.layout import DatasetLayout  # noqa: E402
from bench.common import prepare_lines_dataset  # noqa: E402
from pipeline.shard.config import DEFAULT_JPEG_QUALITY, ShardConfig  # noqa: E402
from pipeline.shard.plan import plan_shard  # noqa: E402
from pipeline.shard.stage import run_shard  # noqa: E402
from pipeline.shard.synthesize import SynthInputs, synthesize  # noqa: E402
from synth.artifacts import parse_artifact_names  # noqa: E402
from synth.hints import parse_hint_names  # noqa: E402
from synth.lines import LineAugment  # noqa: E402

# Format -> (--jpeg members, --lean-train).
FORMATS = {"png": ((), False), "jpeg": (("color", "draft"), False), "lean": (("color", "draft"), True)}
# Where a sample's time goes: cProfile's cumulative time of these functions (qualified by file).
PARTS = {
    "read colour and donors": ("synthesize.py", "read_rgb"),
    "read line art": ("synthesize.py", "read_line"),
    "line augment": ("lines.py", "apply_line_augment"),
    "hint draw": ("__init__.py", "draw_hint"),
    "hint apply": ("__init__.py", "apply_hints"),
    "paste": ("paste.py", "apply_paste_artifacts"),
    "warp": ("warp.py", "apply_warp_artifacts"),
    "spray": ("spray.py", "apply_spray_artifacts"),
    "artifact draws": ("__init__.py", "draw_artifacts"),
    "encode PNG": ("images.py", "encode_png"),
    "encode JPEG": ("images.py", "encode_jpeg"),
    "palette": ("palette.py", "top_colors"),
}


def shard_config(root: Path, args: argparse.Namespace, shard_format: str, workers: int) -> ShardConfig:
    jpeg, lean = FORMATS[shard_format]
    return ShardConfig(root=root, lines=LineAugment((("xdog", 1.0),)), hints=parse_hint_names(args.hints), artifacts=parse_artifact_names(args.artifacts),
                       val_fraction=0.0, jpeg=jpeg, jpeg_quality=args.jpeg_quality, lean_train=lean, workers=workers)


def codec_rate(config: ShardConfig) -> float:
    """Samples/s of decoding each sample's colour and line and encoding the members the stage writes."""
    jobs = plan_shard(config)
    started = time.perf_counter()
    for job in jobs:
        bgr = cv2.imread(str(config.root / job.color_path), cv2.IMREAD_COLOR)
        line = cv2.imread(str(config.root / job.lines[0][1]), cv2.IMREAD_GRAYSCALE)
        encode = {name: (lambda image, name=name: encode_jpeg(image, config.jpeg_quality) if name in config.jpeg else encode_png(image, config.png_compression))
                  for name in ("color", "line", "draft")}
        if "color" in config.jpeg:
            encode["color"](bgr)
        encode["line"](line)
        if config.lean_train:
            continue  # lean train samples carry no hint or draft
        encode_png(np.zeros((*bgr.shape[:2], 4), np.uint8), config.png_compression)  # the hint: RGBA, mostly empty
        if config.artifacts:
            encode["draft"](bgr)
    return len(jobs) / (time.perf_counter() - started)


def per_sample_cost(config: ShardConfig) -> tuple[float, dict[str, float]]:
    """(ms per sample of `synthesize` in this process, {part: ms per sample from a cProfile pass})."""
    jobs = plan_shard(config)
    donors = {"train": {job.key: job.color_path for job in jobs}}
    histogram = np.load(DatasetLayout(config.root).shard_histogram) if "histogram" in config.hints else None
    inputs = SynthInputs(config, donors, histogram)
    synthesize(jobs[0], inputs)  # warm-up
    started = time.perf_counter()
    for job in jobs:
        synthesize(job, inputs)
    total = 1000 * (time.perf_counter() - started) / len(jobs)
    profile = cProfile.Profile()
    profile.enable()
    for job in jobs:
        synthesize(job, inputs)
    profile.disable()
    stats = pstats.Stats(profile).stats  # {(file, line, function): (calls, primitive, tottime, cumtime, callers)}
    parts = {}
    for part, (file_name, function) in PARTS.items():
        seconds = sum(value[3] for (file, _, name), value in stats.items() if name == function and file.endswith(file_name))
        if seconds:
            parts[part] = 1000 * seconds / len(jobs)
    profiled = 1000 * sum(value[3] for (file, _, name), value in stats.items() if name == "synthesize" and file.endswith("synthesize.py")) / len(jobs)
    return total, {part: ms * total / profiled for part, ms in parts.items()}  # scaled to the unprofiled time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--hints", default="patches")
    parser.add_argument("--artifacts", default="paste,warp,spray")
    parser.add_argument("--format", default="png,jpeg,lean", help="shard formats: any of png, jpeg, lean")
    parser.add_argument("--jpeg-quality", type=int, default=DEFAULT_JPEG_QUALITY)
    parser.add_argument("--source", type=Path, help="prepare these illustrations instead of generated ones")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not formats or not set(formats) <= set(FORMATS):
        raise SystemExit(f"--format: choose from {', '.join(FORMATS)}")
    torch.set_num_threads(1)
    results: dict = {"cores": len(os.sched_getaffinity(0)), "workers": args.workers, "hints": args.hints, "artifacts": args.artifacts, "formats": {}}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        prepare_lines_dataset(prepared, args.images, args.size, args.workers, args.source)
        print(f"{args.images} prepared {args.size}x{args.size} images, hints {args.hints}, artifacts {args.artifacts}, {args.workers} workers")
        for name in formats:
            root = Path(tmp) / name
            shutil.copytree(prepared, root)
            codec = codec_rate(shard_config(root, args, name, 1))
            started = time.perf_counter()
            report, _ = run_shard(shard_config(root, args, name, args.workers))
            stage = report.processed / (time.perf_counter() - started)
            total, parts = per_sample_cost(shard_config(root, args, name, 1))
            results["formats"][name] = {"codec_samples_per_s": codec, "stage_samples_per_s": stage, "stage_over_codec": stage / codec,
                                        "ms_per_sample_one_process": total, "ms_per_part": parts}
            print(f"[{name:<4}] decode + encode only (1 process) {codec:8.1f} samples/s   1.00x")
            print(f"[{name:<4}] pipe shard ({args.workers} workers)          {stage:8.1f} samples/s   {stage / codec:.2f}x")
            print(f"[{name:<4}] one sample in one process: {total:.1f} ms = " + ", ".join(f"{part} {ms:.1f}" for part, ms in sorted(parts.items(), key=lambda item: -item[1])))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
