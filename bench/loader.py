"""Benchmark the streaming loader (train/loader.py) against a plain tar-reading loop, in the same run.

    python bench/loader.py [--images 96] [--size 512] [--workers 0,1,2] [--batch-size 16]
                           [--target 3000] [--device cpu]
    python bench/loader.py --workers 0,2,4,8,12,16 --device cuda     # on a GPU box
    python bench/loader.py --source ../shared/data/real/color        # real illustrations (bigger PNGs)

Builds a dataset of generated illustrations (prepared, xdog lines, `pipe shard` with patches hints and
all three draft artifacts), then measures samples/s delivered:
  - plain loop: tarfile over every shard, cv2.imdecode of every PNG member, json.loads, one process;
  - the loader with each worker count (decode in workers, uint8 batches), --epochs passes after a
    warm-up pass, so worker start-up is not counted;
  - the loader reading only colour and line;
  - `pipe eval`'s loader (colour and line; each worker reads every shard and decodes its share of the
    samples) at each worker count, start-up included as eval pays it once a run, against its own
    in-process pass (0 workers).
It then says how many loader workers would feed a trainer consuming --target samples/s, from the
rate one worker adds. Absolute rates belong to the machine they were taken on; compare ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.demo.illustrations import make_prepared_dataset  # noqa: E402
from pipeline.extract.config import ExtractConfig  # noqa: E402
from pipeline.extract.stage import run_extract  # noqa: E402
from pipeline.shard.config import ShardConfig  # noqa: E402
from pipeline.shard.stage import run_shard  # noqa: E402
from synth.lines import LineAugment  # noqa: E402
from pipeline.eval.samples import eval_loader, sample_positions  # noqa: E402
from train.loader import LoaderConfig, make_loader, shard_urls  # noqa: E402


def build_shards(root: Path, images: int, size: int, workers: int, source: Path | None) -> tuple[Path, float, int]:
    if source is None:
        make_prepared_dataset(root, images, size=size)
    else:
        from pipeline.cli import main as pipe_main

        if pipe_main(["prepare", str(source), str(root), "--size", str(size), "--workers", str(workers)]) != 0:
            raise SystemExit(f"pipe prepare failed on {source}")
    run_extract(ExtractConfig(root=root, methods=("xdog",), workers=workers, device="cpu"))
    started = time.perf_counter()
    config = ShardConfig(root=root, lines=LineAugment((("xdog", 1.0),)), hints=("patches",), val_fraction=0.0, max_samples=8, workers=workers)
    report, _ = run_shard(config)
    return root / "shards" / "train", report.processed / (time.perf_counter() - started), report.processed


def plain_loop(folder: Path, epochs: int) -> tuple[float, dict[str, float]]:
    """Samples/s of reading every tar and decoding every member in this process, and the mean
    decode time of each member kind (ms)."""
    count, started = 0, time.perf_counter()
    spent: dict[str, float] = {}
    for url in shard_urls(str(folder)) * epochs:
        with tarfile.open(url) as tar:
            for member in tar:
                data = tar.extractfile(member).read()
                kind = member.name.partition(".")[2]
                begin = time.perf_counter()
                if kind.endswith("png"):
                    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) is not None
                elif kind == "json":
                    json.loads(data)
                    count += 1
                spent[kind] = spent.get(kind, 0.0) + time.perf_counter() - begin
    return count / (time.perf_counter() - started), {kind: 1000 * total / count for kind, total in sorted(spent.items())}


def loader_rate(folder: Path, workers: int, batch_size: int, epochs: int, images: tuple[str, ...] = ("color", "line", "hint", "draft")) -> float:
    loader = make_loader(LoaderConfig(shards=(str(folder),), batch_size=batch_size, workers=workers, shuffle_buffer=64, images=images))
    for _ in loader:  # first epoch starts the workers
        pass
    count, started = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            count += len(batch["__key__"])
    return count / (time.perf_counter() - started)


def eval_loader_rate(folder: Path, workers: int, batch_size: int, epochs: int) -> float:
    """Samples/s of `pipe eval`'s passes over the split, worker start-up included."""
    loader = eval_loader(folder, sample_positions(folder), batch_size, workers, ("color", "line"), with_palette=False)
    count, started = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            count += len(batch["__key__"])
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--workers", default="0,1,2", help="comma-separated loader worker counts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--target", type=float, default=3000.0, help="samples/s a trainer consumes (DESIGN.md: ~3,000 for a draft trainer on one H200)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes over the shards (after one warm-up pass)")
    parser.add_argument("--source", type=Path, help="prepare these illustrations instead of generating flat-colour ones (e.g. ../shared/data/real/color)")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder, shard_rate, samples = build_shards(Path(tmp) / "root", args.images, args.size, max(1, min(cores, 4)), args.source)
        tar_mb = sum(p.stat().st_size for p in folder.glob("*.tar")) / 1e6
        print(f"{samples} samples at {args.size}x{args.size}, {tar_mb / samples:.2f} MB per sample; {cores} cores; pipe shard wrote {shard_rate:.1f} samples/s")
        baseline, decode_ms = plain_loop(folder, args.epochs)
        print("decode time per member: " + ", ".join(f"{kind} {ms:.2f} ms" for kind, ms in decode_ms.items()))
        print(f"{'plain tar + cv2.imdecode loop':<34} {baseline:8.1f} samples/s   1.00x")
        rates = {}
        for workers in counts:
            rates[workers] = loader_rate(folder, workers, args.batch_size, args.epochs)
            print(f"{f'loader, {workers} workers':<34} {rates[workers]:8.1f} samples/s   {rates[workers] / baseline:.2f}x")
        most = max(counts)
        lean = loader_rate(folder, most, args.batch_size, args.epochs, images=("color", "line"))
        print(f"{f'loader, {most} workers, colour+line':<34} {lean:8.1f} samples/s   {lean / baseline:.2f}x")
        serial = eval_loader_rate(folder, 0, args.batch_size, args.epochs)
        for workers in counts:
            rate = serial if workers == 0 else eval_loader_rate(folder, workers, args.batch_size, args.epochs)
            print(f"{f'eval loader, {workers} workers':<34} {rate:8.1f} samples/s   {rate / baseline:.2f}x   ({rate / serial:.2f}x its 0-worker pass)")
    positive = [w for w in counts if w > 0]
    if positive:
        per_worker = max(rates[w] / w for w in positive)
        needed = math.ceil(args.target / per_worker)
        print(f"one loader worker delivers up to {per_worker:.1f} samples/s: feeding {args.target:.0f} samples/s takes about {needed} workers (cores)")


if __name__ == "__main__":
    main()
