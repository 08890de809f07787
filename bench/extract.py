"""Benchmark `pipe extract` per method against the plain one-image-at-a-time OpenCV loop, in the same run.

    python bench/extract.py [--images 1000] [--size 512] [--methods xdog,dilate,canny,highpass,gray]
                            [--workers 2] [--batch-size 16] [--device cpu]
    python bench/extract.py --device cuda --batch-sizes 8,16,32,64 --sketchkeras   # on a GPU box

For each method: the plain loop (cv2.imread, the OpenCV/NumPy version of the method from
tests/extractors/reference.py, cv2.imwrite, one image at a time, one process, OpenCV with its own
threads) and the stage (`pipe extract` on the same prepared images, with its ledger rows: on a CPU
each of --workers processes decodes an image, runs the method's OpenCV form and writes the lines; on
CUDA the methods run in device batches). Also the rate of PNG decode + encode alone (of the colour
image), which bounds any CPU-fed stage.

With --device cuda it also measures each method's device throughput per batch size (images already
on the device, synchronized timing), and with --sketchkeras the sketchKeras network with random
weights in the published layout, in fp32 and bf16, with the bf16 error against fp32. Absolute times
are meaningful only on the machine they were taken on; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.extractors import reference  # noqa: E402
from extractors.methods import apply_lines, draw_params, method_options  # noqa: E402
from manifests.ledger import Ledger  # noqa: E402
from manifests.schema import PREPARED  # noqa: E402
from pipeline.demo.illustrations import make_prepared_dataset  # noqa: E402
from pipeline.extract.config import ExtractConfig  # noqa: E402
from pipeline.extract.stage import run_extract  # noqa: E402

PLAIN = {
    "xdog": lambda rgb: reference.xdog_reference(rgb, 0.4, 4.5, 19, 0.01, 1e9),
    "dilate": lambda rgb: reference.dilate_reference(rgb, 5),
    "canny": lambda rgb: reference.canny_reference(rgb, 2.5, 20, 50),
    "highpass": lambda rgb: reference.highpass_reference(rgb, 3.0),
    "gray": reference.gray_reference,
}


def plain_loop(paths: list[Path], out: Path, method: str | None) -> float:
    """Images/s of read, method (None: nothing), write, one image at a time."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for index, path in enumerate(paths):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        result = PLAIN[method](rgb) if method else rgb
        cv2.imwrite(str(out / f"{index}.png"), result)
    return len(paths) / (time.perf_counter() - started)


def stage_rate(root: Path, method: str, args: argparse.Namespace, weights: dict[str, Path]) -> float:
    """Images/s of `pipe extract` as a user runs it (the `pipe` command, its workers started as it starts
    them), from the stage's own summary: the session's time, worker start-up included, interpreter and
    imports not. Without the console script (not installed), the stage runs in this process."""
    shutil.rmtree(root / "lines", ignore_errors=True)
    (root / "lines.parquet").unlink(missing_ok=True)
    pipe = shutil.which("pipe", path=str(Path(sys.executable).parent)) or shutil.which("pipe")
    if pipe is None:
        config = ExtractConfig(root=root, methods=(method,), device=args.device, batch_size=args.batch_size, workers=args.workers, weights=weights)
        report = run_extract(config)
        return report.processed / report.seconds
    command = [pipe, "extract", str(root), "--method", method, "--device", args.device, "--batch-size", str(args.batch_size), "--workers", str(args.workers)]
    command += [f"--weights={name}={path}" for name, path in weights.items()]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = json.loads((root / ".pipe" / "summaries" / "lines.json").read_text())
    return summary["processed"] / summary["seconds"]


def device_rates(method: str, size: int, batch_sizes: list[int], device: torch.device, networks: dict, precision: str | None = None) -> dict[int, float]:
    settings = method_options(method)
    if precision:
        settings["precision"] = precision
    settings.update(size=None, equalize=False, binarize=None)
    rates = {}
    for batch in batch_sizes:
        images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, device=device)
        params = [draw_params(settings, np.random.default_rng(i)) for i in range(batch)]
        apply_lines(method, images, params, networks)  # warm-up
        _sync(device)
        repeats, started = 0, time.perf_counter()
        while time.perf_counter() - started < 2.0 or repeats < 2:
            apply_lines(method, images, params, networks)
            _sync(device)
            repeats += 1
        rates[batch] = batch * repeats / (time.perf_counter() - started)
    return rates


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def random_sketchkeras(folder: Path) -> Path:
    from tests.stand_ins.sketchkeras import random_keras_model, sketchkeras_model_config
    from extractors.sketchkeras.keras_file import write_keras_h5
    from extractors.sketchkeras.weights import convert_keras_model

    h5, converted = folder / "mod.h5", folder / "sketchkeras.pt"
    write_keras_h5(h5, random_keras_model(sketchkeras_model_config(), seed=0))
    convert_keras_model(h5, converted)
    return converted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--methods", default="xdog,dilate,canny,highpass,gray")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="8,16,32,64", help="device throughput sweep (CUDA only)")
    parser.add_argument("--sketchkeras", action="store_true", help="also sketchKeras with random weights (slow on CPU: use few --images)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    results: dict = {"images": args.images, "size": args.size, "workers": args.workers, "device": args.device, "methods": {}}
    methods = args.methods.split(",")
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory(prefix="pipe-bench-") as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "root"
        make_prepared_dataset(root, args.images, size=args.size)
        paths = [root / row["path"] for row in Ledger(root, PREPARED).read().to_pylist()]
        weights = {"sketchkeras": random_sketchkeras(tmp_path)} if args.sketchkeras else {}
        print(f"{args.images} generated {args.size}x{args.size} images; stage: {args.workers} workers, batch {args.batch_size}, device {device}")
        codec = plain_loop(paths, tmp_path / "codec", None)
        print(f"PNG decode + encode alone (plain loop): {codec:8.1f} images/s")
        results["codec_images_per_s"] = codec
        print(f"{'method':10s} {'plain loop':>12s} {'stage':>10s} {'stage/plain':>12s} {'stage/codec':>12s}")
        for method in methods + (["sketchkeras"] if args.sketchkeras else []):
            if method in PLAIN:
                plain = plain_loop(paths, tmp_path / f"plain-{method}", method)
            else:  # no OpenCV version: the plain loop is the port itself, one image per forward pass
                plain = _single_image_rate(paths, method, device, weights)
            stage = stage_rate(root, method, args, weights)
            print(f"{method:10s} {plain:12.1f} {stage:10.1f} {stage / plain:11.2f}x {stage / codec:11.2f}x")
            results["methods"][method] = {"plain_images_per_s": plain, "stage_images_per_s": stage, "stage_over_plain": stage / plain, "stage_over_codec": stage / codec}
        if device.type == "cuda":
            sizes = [int(b) for b in args.batch_sizes.split(",")]
            print(f"\ndevice throughput on {torch.cuda.get_device_name(device)}, images/s at batch sizes {sizes}:")
            results["device_name"] = torch.cuda.get_device_name(device)
            results["device_images_per_s"] = {}
            for method in methods:
                rates = device_rates(method, args.size, sizes, device, {})
                results["device_images_per_s"][method] = {str(b): r for b, r in rates.items()}
                print(f"  {method:10s} " + "  ".join(f"{b}: {r:9.1f}" for b, r in rates.items()))
            if args.sketchkeras:
                results["sketchkeras"] = _sketchkeras_gpu(weights["sketchkeras"], args.size, sizes, device)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


def _single_image_rate(paths: list[Path], method: str, device: torch.device, weights: dict[str, Path]) -> float:
    from extractors.sketchkeras.weights import load_converted

    networks = {"sketchkeras": load_converted(weights["sketchkeras"], device)}
    settings = method_options(method)
    settings.update(precision="bf16" if device.type == "cuda" else "fp32", size=None, equalize=False, binarize=None)
    started = time.perf_counter()
    for path in paths:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        image = torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous().to(device)
        lines = apply_lines(method, image, [draw_params(settings, np.random.default_rng(0))], networks)
        cv2.imwrite(str(path.with_suffix(".sk.png")), lines[0, 0].cpu().numpy())
    return len(paths) / (time.perf_counter() - started)


def _sketchkeras_gpu(converted: Path, size: int, sizes: list[int], device: torch.device) -> dict:
    """sketchKeras's images/s per batch size in fp32 and bf16, and bf16's error against fp32."""
    from extractors.sketchkeras.extract import line_strength
    from extractors.sketchkeras.weights import load_converted

    networks = {"sketchkeras": load_converted(converted, device)}
    figures: dict = {}
    for precision in ("fp32", "bf16"):
        rates = device_rates("sketchkeras", size, sizes, device, networks, precision)
        figures[precision] = {str(b): r for b, r in rates.items()}
        print(f"  sketchkeras {precision}: " + "  ".join(f"{b}: {r:8.1f}" for b, r in rates.items()))
    images = torch.randint(0, 256, (8, 3, size, size), dtype=torch.uint8, device=device)
    full = line_strength(networks["sketchkeras"], images)
    half = line_strength(networks["sketchkeras"], images, autocast_dtype=torch.bfloat16)
    print(f"  sketchkeras bf16 vs fp32 line strength: max abs difference {(full - half).abs().max().item():.4f}, "
          f"mean {(full - half).abs().mean().item():.5f} (strengths span {full.min().item():.2f}..{full.max().item():.2f})")
    figures["bf16_error_vs_fp32"] = {"max_abs": (full - half).abs().max().item(), "mean_abs": (full - half).abs().mean().item(),
                                     "span": [full.min().item(), full.max().item()]}
    return figures


if __name__ == "__main__":
    main()
