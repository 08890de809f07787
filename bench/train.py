"""Benchmark training steps per recipe and stage: images/s, FLOPs per image, and model FLOPs utilization;
and the step fed by the real loader from shards against the step on data already on the device.

    python bench/train.py [--recipes xu2020,cheng2018] [--steps 5] [--batch-size N] [--size N] [--device cpu]
    python bench/train.py --device cuda --compile --json train.json          # every recipe, eager and compiled
    python bench/train.py --device cuda --real-loader --recipes xu2020 --stages draft --shard-args "--jpeg color,line,draft"

Step mode (the default): each recipe and stage runs the trainer's own step (D step, G step, EMA) on
synthetic batches already on the device, so the figure is the trainer's step rate with the loader out
of the picture. FLOPs per step are counted once with torch.utils.flop_counter. The baseline in the same
run is the same step in plain fp32 (no autocast; --no-fp32 skips it); on CUDA the run's precision is
bf16 autocast with channels_last, and MFU is reported against --peak-tflops (default: ~790 TFLOP/s bf16
for one H200; pass your card's own peak). --compile adds the run's precision with the trainer's torch.compile
(`TrainConfig.compile`), after every eager row, the draft stages at 256x256 first; --time-budget stops
starting compiled rows that would not finish in time (the longest compile so far as the estimate).
Defaults are the recipe's resolution and batch; on a CPU pass a smaller --batch-size. lee2020's VGG16
and LDM are random-weight stand-ins in the published formats (same cost as the real files).

Real-loader mode (--real-loader): builds a dataset (generated illustrations, `pipe extract`, `pipe
shard` with --shard-args), feeds the trainer as `Trainer.train` does (`Trainer.batches`, then
`Trainer.train_step` with its `prepare_batch`), and times steps after a warm-up long
enough to drain the loader's prefetch queue; then the same trainer on the last batch over and over (on
the device already). The ratio of the two step times is the loader's cost to the trainer.

--json FILE writes the results (rewritten after each row, so a run cut short keeps what it measured).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import build_training_shards, environment, exit_on_sigterm, synchronize, write_json  # noqa: E402
from train.recipes import RECIPES, stage_recipe  # noqa: E402
from train.trainer import TrainConfig, Trainer  # noqa: E402

STARTED = time.monotonic()  # --time-budget counts from here


def synthetic_batch(batch_size: int, size: int, device: torch.device) -> dict:
    generator = torch.Generator(device="cpu").manual_seed(0)

    def image(channels: int) -> torch.Tensor:
        return torch.rand((batch_size, channels, size, size), generator=generator).to(device)

    return {"color": image(3), "line": image(1), "hint": image(4), "draft": image(3), "palette": image(12)}


def run_step(trainer: Trainer, batch: dict) -> None:
    trainer.train_step(batch)
    trainer.step += 1


def time_steps(trainer: Trainer, batch: dict, steps: int) -> tuple[float, float]:
    """(seconds of the warm-up, seconds per step after it). The warm-up covers one step of each kind a
    recipe takes (critic-only steps and G steps): under torch.compile it holds the compilation."""
    started = time.perf_counter()
    for _ in range(trainer.critic_steps + 1):
        run_step(trainer, batch)
    synchronize(trainer.device)
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        run_step(trainer, batch)
    synchronize(trainer.device)
    return warmup, (time.perf_counter() - started) / steps


def count_flops(trainer: Trainer, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        trainer.train_step(batch)
    return counter.get_total_flops()


def stand_in_weights(folder: Path) -> None:
    """Random-weight VGG16 and LDM files in the expected formats: the losses cost the same to compute,
    so timing needs no published weights. PIPE_WEIGHTS points there for this run."""
    from extractors.ldm import LdmConfig, LineDetectionModel, save_ldm
    from train.networks.vgg import vgg16_features

    folder.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, folder / "vgg16-397923af.pth")
    save_ldm(LineDetectionModel(LdmConfig(size=128)), folder / "ldm.pt")
    os.environ["PIPE_WEIGHTS"] = str(folder)


def selected(args: argparse.Namespace) -> list[tuple[str, str]]:
    stages = args.stages.split(",")
    return [(recipe, stage) for recipe in args.recipes.split(",") for stage in RECIPES[recipe].stages if stage in stages]


def release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def error_text(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(last.filename).name}:{last.lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class StepBench:
    """Step mode: one row per recipe and stage, eager first, then (with --compile) compiled."""

    def __init__(self, args: argparse.Namespace, device: torch.device, root: Path) -> None:
        self.args, self.device, self.root = args, device, root
        self.peak = args.peak_tflops * 1e12 if device.type == "cuda" else None

    def config(self, recipe: str, stage: str, row: dict, precision: str, compile: bool = False) -> TrainConfig:  # noqa: A002 - TrainConfig's own field name
        return TrainConfig(root=self.root, recipe=recipe, stage=stage, size=row["size"], batch_size=row["batch_size"],
                           device=str(self.device), precision=precision, compile=compile)

    def rate(self, row: dict, seconds_per_step: float) -> dict[str, Any]:
        images_per_s = row["batch_size"] / seconds_per_step
        mfu = row["gflop_per_image"] * 1e9 * images_per_s / self.peak if self.peak and row.get("gflop_per_image") else None
        return {"images_per_s": round(images_per_s, 3), "mfu": None if mfu is None else round(mfu, 4)}

    def eager(self, recipe: str, stage: str) -> dict[str, Any]:
        spec = stage_recipe(recipe, stage)
        row: dict[str, Any] = {"recipe": recipe, "stage": stage, "size": self.args.size or spec.size,
                               "batch_size": self.args.batch_size or spec.batch_size}
        batch = synthetic_batch(row["batch_size"], row["size"], self.device)
        trainer = Trainer(self.config(recipe, stage, row, "auto"))
        row.update(precision=str(trainer.dtype or torch.float32).removeprefix("torch."),
                   channels_last=trainer.memory_format == torch.channels_last)
        row["gflop_per_image"] = round(count_flops(trainer, batch) / row["batch_size"] / 1e9, 3)
        row["eager"] = self.rate(row, time_steps(trainer, batch, self.args.steps)[1])
        del trainer
        if self.args.fp32:
            trainer = Trainer(self.config(recipe, stage, row, "fp32"))
            row["fp32"] = {"images_per_s": round(row["batch_size"] / time_steps(trainer, batch, self.args.steps)[1], 3)}
            row["eager_over_fp32"] = round(row["eager"]["images_per_s"] / row["fp32"]["images_per_s"], 3)
            del trainer
        release(self.device)
        return row

    def compiled(self, row: dict) -> dict[str, Any]:
        torch._dynamo.reset()  # every recipe compiles afresh (no recompile limit carried over)
        batch = synthetic_batch(row["batch_size"], row["size"], self.device)
        trainer = Trainer(self.config(row["recipe"], row["stage"], row, "auto", compile=True))
        warmup, per_step = time_steps(trainer, batch, self.args.steps)
        del trainer
        release(self.device)
        return {**self.rate(row, per_step), "warmup_s": round(warmup, 1)}


def compile_order(rows: list[dict]) -> list[dict]:
    """Draft stages at 256x256 first (the MFU target's rows), so a short budget still compiles those."""
    return sorted(rows, key=lambda row: (row["stage"] != "draft", row["size"] != 256))


def step_mode(args: argparse.Namespace, device: torch.device, root: Path, report: dict, save: Callable[[], None]) -> bool:
    bench = StepBench(args, device, root)
    report.update(steps=args.steps, peak_tflops=args.peak_tflops if bench.peak else None, rows=[])
    header = f"{'recipe':<12} {'stage':<7} {'size':>5} {'batch':>5} {'GFLOP/img':>10} {'fp32 img/s':>11} {'run img/s':>10} {'ratio':>6} {'MFU':>6}"
    print(header, flush=True)
    ok = True
    for recipe, stage in selected(args):
        try:
            row = bench.eager(recipe, stage)
        except Exception as exc:  # noqa: BLE001 - one recipe's failure must not stop the others
            row, ok = {"recipe": recipe, "stage": stage, "error": error_text(exc)}, False
            release(device)
        report["rows"].append(row)
        save()
        if "error" in row:
            print(f"{recipe:<12} {stage:<7} error: {row['error']}", flush=True)
            continue
        fp32, ratio, mfu = row.get("fp32", {}).get("images_per_s"), row.get("eager_over_fp32"), row["eager"]["mfu"]
        print(f"{recipe:<12} {stage:<7} {row['size']:>5} {row['batch_size']:>5} {row['gflop_per_image']:>10.1f} "
              f"{'-' if fp32 is None else f'{fp32:.2f}':>11} {row['eager']['images_per_s']:>10.2f} {'-' if ratio is None else f'{ratio:.2f}x':>6} "
              f"{'-' if mfu is None else f'{mfu:.1%}':>6}", flush=True)
    if not args.compile:
        return ok
    print("torch.compile (the trainer's generator), same precision:", flush=True)
    longest = 0.0
    for row in compile_order([row for row in report["rows"] if "error" not in row]):
        left = args.time_budget - (time.monotonic() - STARTED) if args.time_budget else None
        if left is not None and left < longest:
            row["compiled"] = {"skipped": f"time budget: {max(left, 0):.0f} s left, the longest compile so far took {longest:.0f} s"}
        else:
            began = time.monotonic()
            try:
                row["compiled"] = bench.compiled(row)
                row["compiled_over_eager"] = round(row["compiled"]["images_per_s"] / row["eager"]["images_per_s"], 3)
            except Exception as exc:  # noqa: BLE001
                row["compiled"], ok = {"error": error_text(exc)}, False
                release(device)
            longest = max(longest, time.monotonic() - began)
        save()
        print(f"{row['recipe']:<12} {row['stage']:<7} {compiled_text(row)}", flush=True)
    return ok


def compiled_text(row: dict) -> str:
    result = row["compiled"]
    if "images_per_s" not in result:
        return next(iter(result.values()))  # why it was skipped, or its error
    mfu = f"  MFU {result['mfu']:.1%}" if result["mfu"] is not None else ""
    return f"{result['images_per_s']:10.2f} img/s  {row['compiled_over_eager']:.2f}x eager  warm-up {result['warmup_s']:.0f} s{mfu}"


def real_loader_mode(args: argparse.Namespace, device: torch.device, root: Path, report: dict, save: Callable[[], None]) -> bool:
    pairs = selected(args)
    hints = "patches,palette" if any("palette" in stage_recipe(r, s).inputs for r, s in pairs) else "patches"
    warmup = args.warmup if args.warmup is not None else 4 * args.loader_workers + 4  # the DataLoader prefetches 4 batches a worker
    data = root / "data"
    started = time.perf_counter()
    build_training_shards(data, args.images, args.image_size, args.loader_workers, hints, args.shard_args)
    report.update(images=args.images, image_size=args.image_size, loader_workers=args.loader_workers, shard_args=args.shard_args,
                  hints=hints, dataset_s=round(time.perf_counter() - started, 1), warmup_steps=warmup, steps=args.steps, rows=[])
    print(f"dataset: {args.images} images at {args.image_size}x{args.image_size}, shards ({args.shard_args or 'PNG'}) in {report['dataset_s']:.0f} s; "
          f"{args.loader_workers} loader workers, {warmup} warm-up steps, {args.steps} timed", flush=True)
    ok = True
    for recipe, stage in pairs:
        row: dict[str, Any] = {"recipe": recipe, "stage": stage}
        try:
            row.update(measure_real_loader(args, device, data, recipe, stage, warmup))
        except Exception as exc:  # noqa: BLE001
            row["error"], ok = error_text(exc), False
        release(device)
        report["rows"].append(row)
        save()
        if "error" in row:
            print(f"{recipe:<12} {stage:<7} error: {row['error']}", flush=True)
        else:
            print(f"{recipe:<12} {stage:<7} size {row['size']} batch {row['batch_size']}: real loader {row['real']['images_per_s']:.1f} img/s, "
                  f"synthetic {row['synthetic']['images_per_s']:.1f} img/s; real step takes {row['real_over_synthetic']:.2f}x the synthetic one", flush=True)
    return ok


def measure_real_loader(args: argparse.Namespace, device: torch.device, data: Path, recipe: str, stage: str, warmup: int) -> dict[str, Any]:
    config = TrainConfig(root=data, recipe=recipe, stage=stage, run=f"bench-{recipe}-{stage}", size=args.size, batch_size=args.batch_size,
                         device=str(device), workers=args.loader_workers, steps=warmup + args.steps)
    trainer = Trainer(config)
    trainer.plan()  # the LR schedule, applied each step as in a run
    batches = trainer.batches(warmup + args.steps)
    batch = None
    for _ in range(warmup):
        batch = next(batches)
        run_step(trainer, batch)
    synchronize(device)
    started = time.perf_counter()
    for _ in range(args.steps):
        batch = next(batches)
        run_step(trainer, batch)
    synchronize(device)
    real = (time.perf_counter() - started) / args.steps
    # Stop the loader's workers: decoding on in the background would slow the synthetic steps.
    del batches
    gc.collect()
    synthetic = time_steps(trainer, batch, args.steps)[1]
    size, batch_size = trainer.size, trainer.batch_size
    return {"size": size, "batch_size": batch_size, "loaded_size": list(batch["color"].shape[-2:]),
            "jpeg_on_device": getattr(trainer, "jpeg_on_device", None), "synth": getattr(config, "synth", None),
            "real": {"seconds_per_step": round(real, 5), "images_per_s": round(batch_size / real, 2)},
            "synthetic": {"seconds_per_step": round(synthetic, 5), "images_per_s": round(batch_size / synthetic, 2)},
            "real_over_synthetic": round(real / synthetic, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--stages", default="draft,refine,ldm")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--size", type=int, help="training size; default: the recipe's")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=790.0, help="the device's bf16 peak for MFU (CUDA only)")
    parser.add_argument("--fp32", action=argparse.BooleanOptionalAction, default=True, help="also time the plain fp32 step (the baseline)")
    parser.add_argument("--compile", action="store_true", help="also time the step with the trainer's torch.compile")
    parser.add_argument("--time-budget", type=float, help="seconds from start after which no compiled row is started that would not fit")
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    group = parser.add_argument_group("real-loader mode")
    group.add_argument("--real-loader", action="store_true", help="time the step fed by the loader from shards against synthetic on-device batches")
    group.add_argument("--images", type=int, default=256, help="generated illustrations in the dataset")
    group.add_argument("--image-size", type=int, default=512, help="their size (as pipe prepare leaves them)")
    group.add_argument("--loader-workers", type=int, default=8)
    group.add_argument("--warmup", type=int, help="untimed steps first (default: 4 per loader worker + 4, its prefetch queue)")
    group.add_argument("--shard-args", default="", help='more `pipe shard` options, e.g. "--jpeg color,line,draft"')
    args = parser.parse_args()
    unknown = [r for r in args.recipes.split(",") if r not in RECIPES]
    if unknown:
        parser.error(f"unknown recipe(s) {', '.join(unknown)}; choose from {', '.join(RECIPES)}")
    exit_on_sigterm()
    device = torch.device(args.device)
    report: dict[str, Any] = {"mode": "real_loader" if args.real_loader else "steps", **environment(device)}

    def save() -> None:
        if args.json:
            write_json(args.json, report)

    print(f"device {device} ({report['device_name']}), torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pipe-bench-train-") as tmp:
        stand_in_weights(Path(tmp) / "weights")
        mode = real_loader_mode if args.real_loader else step_mode
        ok = mode(args, device, Path(tmp), report, save)
    save()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
