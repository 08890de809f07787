"""Benchmark `pipe prepare` against a plain single-process OpenCV loop on the same generated images.

    python bench/prepare.py [--images 384] [--workers 2] [--min-side 900 --max-side 2400] [--executor ray]

The baseline is what a researcher writes first: for each file, cv2.imread, centre square, area
resize to 512, PNG encode, write. `pipe prepare` does more per image (content hash, colour and
brightness filters, perceptual hash, ledger rows, duplicate detection), so its 1-worker rate shows the
cost of that bookkeeping, and its N-worker rate shows how the process pool scales. The plain loop
split over N independent processes shows how far this machine's cores scale at all (on shared
virtual CPUs, well under N times the single loop). With `--executor ray` it also runs `pipe prepare`
on a local Ray runtime with N CPUs (started before the clock, as a cluster would be running already)
and prints its rate against the local pool's. Figures are images/second and ratios against the baseline
measured in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.demo.illustrations import make_illustration, save_rgb  # noqa: E402
from pipeline.prepare.stage import PrepareConfig, PrepareStage  # noqa: E402
from pipeline.runner import RunnerConfig, run_stage  # noqa: E402


def make_inputs(folder: Path, count: int, min_side: int, max_side: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    total_bytes = 0
    for index in range(count):
        width, height = int(rng.integers(min_side, max_side)), int(rng.integers(min_side, max_side))
        height = min(max(height, width // 2 + 1), width * 2 - 1)  # keep within the default aspect limit
        path = folder / f"img_{index:04d}.{'png' if index % 8 == 0 else 'jpg'}"
        save_rgb(path, make_illustration(rng, width, height))
        total_bytes += path.stat().st_size
    return total_bytes


def plain_opencv_loop(inputs: list[Path], out: Path, size: int) -> float:
    start = time.perf_counter()
    for path in inputs:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        height, width = image.shape[:2]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
        ok, encoded = cv2.imencode(".png", square)
        (out / f"{path.stem}.png").write_bytes(encoded.tobytes())
    return time.perf_counter() - start


def plain_loop_in_processes(inputs: list[Path], out: Path, size: int, processes: int) -> float:
    """The plain loop split over independent processes: what this machine's cores allow at best."""
    halves = [inputs[index::processes] for index in range(processes)]
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.apply(time.sleep, (0,))  # start-up is not part of the ceiling
        start = time.perf_counter()
        pool.starmap(plain_opencv_loop, [(half, out, size) for half in halves])
    return time.perf_counter() - start


def pipe_prepare(source: Path, root: Path, workers: int, executor: str = "local") -> float:
    start = time.perf_counter()
    report = run_stage(PrepareStage(source=source, root=root, config=PrepareConfig()), root, RunnerConfig(workers=workers, executor=executor))
    elapsed = time.perf_counter() - start
    ok = sum(count for status, _, count in report.total_counts if status == "ok")
    if ok != report.planned:
        raise SystemExit(f"expected every generated image to pass, got {report.total_counts}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--min-side", type=int, default=900)
    parser.add_argument("--max-side", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--executor", choices=("local", "ray"), default="local", help="ray: also time the Ray executor")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="pipe-bench-"))
    try:
        source = work / "source"
        source.mkdir()
        size_mb = make_inputs(source, args.images, args.min_side, args.max_side, args.seed) / 1e6
        inputs = sorted(source.iterdir())
        print(f"{args.images} generated images, {args.min_side}-{args.max_side} px sides, {size_mb:.0f} MB (7/8 JPEG, 1/8 PNG)")

        (work / "plain").mkdir()
        baseline = plain_opencv_loop(inputs, work / "plain", 512)
        rows = [("plain OpenCV loop (1 process)", baseline)]
        if args.workers > 1:
            ceiling = plain_loop_in_processes(inputs, work / "plain", 512, args.workers)
            rows.append((f"plain loop split over {args.workers} processes", ceiling))
        for workers in sorted({1, args.workers}):
            rows.append((f"pipe prepare --workers {workers}", pipe_prepare(source, work / f"pipe{workers}", workers)))
        if args.executor == "ray":
            import ray

            ray.init(num_cpus=args.workers, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
            try:
                ray_seconds = pipe_prepare(source, work / "pipe-ray", args.workers, executor="ray")
            finally:
                ray.shutdown()

        print(f"\n{'run':<34}{'images/s':>10}{'vs plain':>10}")
        for name, seconds in rows:
            print(f"{name:<34}{args.images / seconds:>10.1f}{baseline / seconds:>9.2f}x")
        if args.workers > 1:
            one, many = rows[2][1], rows[-1][1]
            print(f"\nscaling 1 -> {args.workers} workers: {one / many:.2f}x; "
                  f"pipe --workers {args.workers} vs the plain loop split over {args.workers} processes: {rows[1][1] / many:.2f}x")
        if args.executor == "ray":
            local_seconds = rows[-1][1]
            print(f"pipe prepare --executor ray --workers {args.workers}: {args.images / ray_seconds:.1f} images/s, "
                  f"{local_seconds / ray_seconds:.2f}x the local pool's rate ({baseline / ray_seconds:.2f}x the plain loop)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
