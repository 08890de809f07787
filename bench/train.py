"""Benchmark training steps per recipe and stage: images/s, FLOPs per image, and model FLOPs utilization.

    python bench/train.py [--recipes xu2020,cheng2018] [--steps 5] [--batch-size N] [--size N] [--device cpu]
    python bench/train.py --device cuda --recipes xu2020 --stages draft --batch-size 64 --size 256   # H200 target

Each recipe and stage runs the trainer's own step (D step, G step, EMA) on synthetic batches already
on the device, so the figure is the trainer's step rate with the loader out of the picture (compare
with bench/loader.py to see whether the loader keeps up). FLOPs per step are counted once with
torch.utils.flop_counter. The baseline in the same run is the same step in plain fp32 (no autocast);
on CUDA the default precision is bf16 autocast with channels_last, and MFU is reported against
--peak-tflops (default: DESIGN.md's ~790 TFLOP/s bf16 for one H200). Defaults are the recipe's
resolution and batch; on a CPU pass a smaller --batch-size. lee2020's VGG16 and LDM are random-weight
stand-ins in the published formats (same cost as the real files).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.recipes import RECIPES, stage_recipe  # noqa: E402
from train.trainer import TrainConfig, Trainer  # noqa: E402


def synthetic_batch(batch_size: int, size: int, device: torch.device) -> dict:
    generator = torch.Generator(device="cpu").manual_seed(0)

    def image(channels: int) -> torch.Tensor:
        return torch.rand((batch_size, channels, size, size), generator=generator).to(device)

    return {"color": image(3), "line": image(1), "hint": image(4), "draft": image(3), "palette": image(12)}


def time_steps(trainer: Trainer, batch: dict, steps: int) -> float:
    """Seconds per step (after one warm-up step)."""
    trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(batch)
        trainer.step += 1
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / steps


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--stages", default="draft,refine,ldm")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--size", type=int)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-tflops", type=float, default=790.0)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    header = f"{'recipe':<12} {'stage':<7} {'size':>5} {'batch':>5} {'GFLOP/img':>10} {'fp32 img/s':>11} {'run img/s':>10} {'ratio':>6}"
    print(header + ("   MFU" if device.type == "cuda" else ""))
    with tempfile.TemporaryDirectory() as tmp:
        stand_in_weights(Path(tmp) / "weights")
        for recipe in args.recipes.split(","):
            for stage in args.stages.split(","):
                if stage not in RECIPES[recipe].stages:
                    continue
                spec = stage_recipe(recipe, stage)
                size, batch_size = args.size or spec.size, args.batch_size or spec.batch_size
                batch = synthetic_batch(batch_size, size, device)
                rates = {}
                flops = 0
                for precision in ("fp32", "auto"):
                    config = TrainConfig(root=Path(tmp), recipe=recipe, stage=stage, size=size, batch_size=batch_size, device=str(device), precision=precision)
                    trainer = Trainer(config)
                    if precision == "auto":
                        flops = count_flops(trainer, batch)
                    rates[precision] = batch_size / time_steps(trainer, batch, args.steps)
                    del trainer
                per_image = flops / batch_size / 1e9
                line = f"{recipe:<12} {stage:<7} {size:>5} {batch_size:>5} {per_image:>10.1f} {rates['fp32']:>11.2f} {rates['auto']:>10.2f} {rates['auto'] / rates['fp32']:>5.2f}x"
                if device.type == "cuda":
                    line += f"  {flops / batch_size * rates['auto'] / (args.peak_tflops * 1e12):6.1%}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
