"""Benchmark `pipe eval`'s pieces against plain baselines measured in the same run.

    python bench/eval.py [--images 64] [--size 512] [--batch-sizes 1,8,32] [--device cpu]
    python bench/eval.py --device cuda --images 2048 --batch-sizes 32,64,128,256   # on a GPU box
    python bench/eval.py --weights pt_inception-2015-12-05-6726825d.pth             # the real network

Measures, on generated 512x512 illustrations:
  - FID Inception feature extraction (uint8 in, TensorFlow-1.x bilinear resize to 299, (x-128)/128,
    fp32 without TF32) in images/s at each batch size, against the plain loop: one image at a time,
    cv2.resize to 299, the same network;
  - the resize alone against torch's own bilinear interpolate (pytorch-fid's resize);
  - the Frechet distance of two 2048-d sets through the eigenvalues of the covariance product, against
    scipy.linalg.sqrtm (the reference code's route), and KID with 100 subsets of 1000;
  - PSNR and SSIM as `pipe eval` computes them (a batch on the device) against scikit-image's
    functions image by image, and the hint scores (adherence and containment under C-FID hints), each
    as a share of the Inception pass's time per image.
Without --weights the network has random weights in the published layout: the timing is the same.
Absolute rates belong to the machine they were taken on; compare the ratios. --features-only stops
after the feature extraction; --json FILE also writes every figure to a JSON file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.demo.illustrations import OUTLINE, make_illustration  # noqa: E402
from pipeline.eval.hints import eval_hints  # noqa: E402
from pipeline.eval.run import EvalConfig, ImageScores, add_hint_scores  # noqa: E402
from train.metrics.cielab import srgb_to_lab  # noqa: E402
from train.metrics.frechet import frechet_distance, gaussian_stats, kernel_inception_distance  # noqa: E402
from train.metrics.image_quality import psnr, ssim  # noqa: E402
from train.metrics.inception_features import InceptionFeatures, full_float32, resize_like_tensorflow  # noqa: E402
from tests.stand_ins.inception import stand_in_state_dict  # noqa: E402
from train.networks.inception import INPUT_SIZE, FIDInception, load_fid_inception  # noqa: E402
from bench.common import environment, exit_on_sigterm, synchronize, write_json  # noqa: E402


def timed(function, device: str, repeats: int = 1) -> float:
    """Best of `repeats` wall-clock seconds of function() (after one warm-up call)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        started = time.perf_counter()
        function()
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return best


@torch.no_grad()
def plain_loop(model: FIDInception, images: np.ndarray, device: str) -> None:
    """The straightforward extraction: one image at a time, OpenCV's resize."""
    with full_float32():
        for image in images:
            resized = cv2.resize(image, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            tensor = torch.from_numpy((resized - 128.0) / 128.0).permute(2, 0, 1)[None].to(device)
            model.pool_features(tensor).cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--weights", type=Path, help="the real pt_inception-2015-12-05-6726825d.pth (default: random weights in its layout)")
    parser.add_argument("--features", type=int, default=4096, help="vectors per set for the Frechet and KID timings")
    parser.add_argument("--features-only", action="store_true", help="time the Inception feature extraction alone")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    args = parser.parse_args()
    exit_on_sigterm()
    device = args.device
    results: dict = {**environment(device), "images": args.images, "size": args.size, "weights": "published" if args.weights else "random"}

    def save() -> None:
        if args.json:
            write_json(args.json, results)

    if args.weights:
        model = load_fid_inception(args.weights)
    else:
        model = FIDInception()
        model.load_state_dict({**model.state_dict(), **stand_in_state_dict()})
        model.eval().requires_grad_(False)
    model.to(device)
    rng = np.random.default_rng(0)
    images = np.stack([make_illustration(rng, args.size, args.size) for _ in range(args.images)])
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    print(f"{args.images} images at {args.size}x{args.size} on {device} ({results['device_name']}); weights: {'published file' if args.weights else 'random, published layout'}")

    loop_rate = len(images) / timed(lambda: plain_loop(model, images, device), device)
    print(f"{'plain loop (batch 1, cv2.resize)':<40} {loop_rate:9.1f} images/s   1.00x")
    inception_rate = loop_rate
    results["features"] = {"plain_loop_images_per_s": round(loop_rate, 2), "images_per_s": {}}
    for size in [int(b) for b in args.batch_sizes.split(",")]:
        extractor = InceptionFeatures(model, device, size)
        rate = len(images) / timed(lambda extractor=extractor: extractor(batch), device)
        inception_rate = max(inception_rate, rate)
        results["features"]["images_per_s"][str(size)] = round(rate, 2)
        print(f"{f'pipe eval features, batch {size}':<40} {rate:9.1f} images/s   {rate / loop_rate:.2f}x")
    results["features"]["best_images_per_s"] = max(results["features"]["images_per_s"].values())
    save()
    if args.features_only:
        return

    chunk = batch[:32].to(device).float()
    ours = timed(lambda: resize_like_tensorflow(chunk), device, repeats=5)
    torch_bilinear = timed(lambda: F.interpolate(chunk, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False), device, repeats=5)
    print(f"resize of 32 images: TensorFlow-1.x method takes {ours / torch_bilinear:.2f}x torch's bilinear interpolate,"
          f" {ours * inception_rate / 32:.3f}x the whole feature pass of those images")
    results["resize"] = {"tf_over_torch_bilinear": round(ours / torch_bilinear, 3), "share_of_feature_pass": round(ours * inception_rate / 32, 4)}

    a = rng.normal(size=(args.features, 2048)) * np.logspace(0, -2, 2048)
    b = a[::-1] * 1.05 + 0.01
    stats_a, stats_b = gaussian_stats(a), gaussian_stats(b)
    eig_seconds = timed(lambda: frechet_distance(stats_a, stats_b), "cpu")
    sqrtm_seconds = timed(lambda: scipy.linalg.sqrtm(stats_a.covariance @ stats_b.covariance), "cpu")
    kid_seconds = timed(lambda: kernel_inception_distance(a, b, subsets=100, subset_size=1000), "cpu")
    print(f"Frechet distance at 2048-d: eigenvalue route takes {eig_seconds / sqrtm_seconds:.2f}x scipy.linalg.sqrtm's time;"
          f" KID (100 x 1000) takes {kid_seconds / eig_seconds:.2f}x the Frechet distance's")
    results["frechet"] = {"eigenvalue_s": round(eig_seconds, 4), "sqrtm_s": round(sqrtm_seconds, 4), "kid_s": round(kid_seconds, 4)}
    save()

    count = min(16, len(images))
    keys = [f"bench{i}" for i in range(count)]
    truths_host = images[:count]
    hints = eval_hints("cfid", batch[:count], keys, None).permute(0, 2, 3, 1).numpy()
    lines = np.where(np.abs(truths_host.astype(int) - np.array(OUTLINE)).sum(3) < 60, 0, 255).astype(np.uint8)
    outputs_host = np.clip(truths_host.astype(int) + rng.integers(-20, 21, truths_host.shape), 0, 255).astype(np.uint8)
    truths_device = batch[:count].to(device)
    outputs_device = torch.from_numpy(outputs_host).permute(0, 3, 1, 2).contiguous().to(device)

    def skimage_quality() -> None:
        for output, truth in zip(outputs_host, truths_host):
            peak_signal_noise_ratio(truth, output, data_range=255)
            structural_similarity(truth, output, channel_axis=2, data_range=255)

    def batched_quality() -> None:
        psnr(outputs_device, truths_device).tolist()
        ssim(outputs_device, truths_device).tolist()

    plain = timed(skimage_quality, "cpu") / count
    batched = timed(batched_quality, device) / count
    print(f"PSNR + SSIM: pipe eval's batch on {device} takes {batched / plain:.2f}x scikit-image's per-image time"
          f" ({plain * inception_rate:.2f}x and {batched * inception_rate:.2f}x the Inception pass's time per image)")
    results["quality"] = {"batched_over_skimage": round(batched / plain, 4), "skimage_s_per_image": round(plain, 5), "batched_s_per_image": round(batched, 6)}

    config = EvalConfig(root=Path("."), draft=Path("unused"))

    def hint_scores() -> None:
        output_lab, truth_lab = srgb_to_lab(outputs_device), srgb_to_lab(truths_device)
        for i in range(count):
            add_hint_scores(ImageScores(0.0, 0.0), outputs_host[i], output_lab[i], truths_host[i], truth_lab[i], lines[i], hints[i], config)

    per_image = timed(hint_scores, device) / count
    print(f"hint scores (adherence of output and truth, containment; C-FID hints): {per_image * inception_rate:.2f}x the Inception pass's time per image")
    results["hint_scores"] = {"s_per_image": round(per_image, 5), "share_of_feature_pass": round(per_image * inception_rate, 3)}
    save()


if __name__ == "__main__":
    main()
