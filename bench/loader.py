"""Benchmark the streaming loader (train/loader.py) on PNG and JPEG shards, against a plain tar-reading loop.

    python bench/loader.py [--images 96] [--size 512] [--train-size 256] [--workers 0,1,2]
                           [--batch-size 16] [--target 3000] [--json OUT.json]
    python bench/loader.py --format jpeg --train-size 256 --workers 8,16        # on a GPU box
    python bench/loader.py --source ../shared/data/real/color                  # real illustrations

Builds one dataset (prepared illustrations, xdog lines) and shards it twice with `pipe shard`
(patches hints, all three draft artifacts): every member PNG, and `--jpeg color,draft` at
`--jpeg-quality`. Then measures samples/s delivered:
  - plain loop: tarfile over every PNG shard, cv2.imdecode of every member, json.loads, one process;
  - per format, a draft recipe's loader as `pipe train` makes it (`--synth device`: colour and line
    only, dense members decoded at the reduced scale closest to --train-size) at each worker count,
    after a warm-up pass, so worker start-up is not counted; and the samples/s one worker adds;
  - on PNG shards, the loader decoding every member at full size (what `--synth shards` reads);
  - `pipe eval`'s loader (colour and line, start-up included) against its own 0-worker pass.
It also gives the quality cost of the JPEG colour: PSNR (dB) of the JPEG colour against the PNG
colour over every sample. Absolute rates belong to the machine they were taken on; compare ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import prepare_lines_dataset  # noqa: E402
from pipeline.shard.config import ShardConfig  # noqa: E402
from pipeline.shard.stage import run_shard  # noqa: E402
from synth.lines import LineAugment  # noqa: E402
from pipeline.eval.samples import eval_loader, sample_positions  # noqa: E402
from train.loader import LoaderConfig, make_loader, shard_urls  # noqa: E402


FORMATS = {"png": (), "jpeg": ("color", "draft")}


def build_shards(prepared: Path, root: Path, jpeg: tuple[str, ...], quality: int, workers: int) -> tuple[Path, float, int]:
    """Shards of the prepared dataset (copied to `root`) with `jpeg` members; (train folder, samples/s, samples)."""
    shutil.copytree(prepared, root)
    started = time.perf_counter()
    config = ShardConfig(root=root, lines=LineAugment((("xdog", 1.0),)), hints=("patches",), val_fraction=0.0, max_samples=8,
                         workers=workers, jpeg=jpeg, jpeg_quality=quality)
    report, _ = run_shard(config)
    return root / "shards" / "train", report.processed / (time.perf_counter() - started), report.processed


def jpeg_psnr(png_folder: Path, jpeg_folder: Path) -> dict[str, float]:
    """PSNR (dB, 8-bit peak) of each sample's JPEG colour against its PNG colour: mean, min, max."""
    def colours(folder: Path) -> dict[str, np.ndarray]:
        found = {}
        for url in shard_urls(str(folder)):
            with tarfile.open(url) as tar:
                for member in tar:
                    key, _, ext = member.name.partition(".")
                    if ext in ("color.png", "color.jpg"):
                        found[key] = cv2.imdecode(np.frombuffer(tar.extractfile(member).read(), np.uint8), cv2.IMREAD_COLOR)
        return found

    exact, lossy = colours(png_folder), colours(jpeg_folder)
    values = [cv2.PSNR(exact[key], lossy[key]) for key in sorted(exact)]
    return {"mean": float(np.mean(values)), "min": float(np.min(values)), "max": float(np.max(values)), "samples": len(values)}


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


def loader_rate(folder: Path, workers: int, batch_size: int, epochs: int, images: tuple[str, ...] = ("color", "line", "hint", "draft"),
                decode_size: int | None = None) -> float:
    loader = make_loader(LoaderConfig(shards=(str(folder),), batch_size=batch_size, workers=workers, shuffle_buffer=64, images=images, decode_size=decode_size))
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
    parser.add_argument("--size", type=int, default=512, help="prepared image size")
    parser.add_argument("--train-size", type=int, default=256, help="the training size a draft recipe's loader decodes for")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated loader worker counts")
    parser.add_argument("--format", default="png,jpeg", help="shard formats to measure: png, jpeg or both")
    parser.add_argument("--jpeg-quality", type=int, default=95)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--target", type=float, default=3000.0, help="samples/s a trainer consumes (about 3,000 for a draft trainer on one H200: README, pipe shard)")
    parser.add_argument("--epochs", type=int, default=3, help="timed passes over the shards (after one warm-up pass)")
    parser.add_argument("--source", type=Path, help="prepare these illustrations instead of generating flat-colour ones (e.g. ../shared/data/real/color)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    if not formats or not set(formats) <= set(FORMATS):
        raise SystemExit(f"--format: choose from {', '.join(FORMATS)}")
    cores = len(os.sched_getaffinity(0))
    torch.set_num_threads(1)
    results: dict = {"cores": cores, "train_size": args.train_size, "batch_size": args.batch_size, "formats": {}}
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared"
        build_workers = max(1, min(cores, 4))
        prepare_lines_dataset(prepared, args.images, args.size, build_workers, args.source)
        folders = {}
        for name in sorted(set(formats) | {"png"}):
            folder, shard_rate, samples = build_shards(prepared, Path(tmp) / name, FORMATS[name], args.jpeg_quality, build_workers)
            folders[name] = folder
            mb = sum(p.stat().st_size for p in folder.glob("*.tar")) / 1e6 / samples
            results["formats"][name] = {"mb_per_sample": mb, "shard_samples_per_s": shard_rate}
            print(f"{name}: {samples} samples at {args.size}x{args.size}, {mb:.3f} MB per sample; pipe shard wrote {shard_rate:.1f} samples/s")
        results["samples"] = samples
        if "jpeg" in folders:
            results["jpeg_psnr_db"] = psnr = jpeg_psnr(folders["png"], folders["jpeg"])
            print(f"JPEG colour (quality {args.jpeg_quality}) against PNG: PSNR {psnr['mean']:.2f} dB mean, {psnr['min']:.2f} min, {psnr['max']:.2f} max")
        baseline, decode_ms = plain_loop(folders["png"], args.epochs)
        results["plain_loop"] = {"samples_per_s": baseline, "decode_ms": decode_ms}
        print(f"{cores} cores; decode time per PNG member: " + ", ".join(f"{kind} {ms:.2f} ms" for kind, ms in decode_ms.items()))
        print(f"{'plain tar + cv2.imdecode loop (png)':<44} {baseline:8.1f} samples/s   1.00x")
        draft_members = ("color", "line")
        for name in formats:
            rates = {}
            for workers in counts:
                rates[workers] = loader_rate(folders[name], workers, args.batch_size, args.epochs, draft_members, decode_size=args.train_size)
                print(f"{f'{name}: draft loader at {args.train_size}, {workers} workers':<44} {rates[workers]:8.1f} samples/s   {rates[workers] / baseline:.2f}x")
            positive = [w for w in counts if w > 0]
            per_worker = max(rates[w] / w for w in positive) if positive else rates[0]
            results["formats"][name].update(draft_loader={str(w): r for w, r in rates.items()}, per_worker=per_worker, workers_for_target=math.ceil(args.target / per_worker))
        if "png" in formats:
            most = max(counts)
            full = loader_rate(folders["png"], most, args.batch_size, args.epochs)
            results["formats"]["png"]["all_members_full_size"] = {str(most): full}
            print(f"{f'png: every member at {args.size}, {most} workers':<44} {full:8.1f} samples/s   {full / baseline:.2f}x")
            serial = eval_loader_rate(folders["png"], 0, args.batch_size, args.epochs)
            results["eval_loader"] = {}
            for workers in counts:
                rate = serial if workers == 0 else eval_loader_rate(folders["png"], workers, args.batch_size, args.epochs)
                results["eval_loader"][str(workers)] = rate
                print(f"{f'eval loader, {workers} workers':<44} {rate:8.1f} samples/s   {rate / baseline:.2f}x   ({rate / serial:.2f}x its 0-worker pass)")
    for name in formats:
        figures = results["formats"][name]
        print(f"{name}: one loader worker delivers {figures['per_worker']:.1f} samples/s of a draft recipe's members at {args.train_size}: "
              f"feeding {args.target:.0f} samples/s takes about {figures['workers_for_target']} workers (cores)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
