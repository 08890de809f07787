"""Helpers the benchmark scripts share: device timing, the machine's description, JSON results, and a
small training dataset built with the `pipe` commands.

Import it from a bench script as `from bench.common import ...` (each script puts the repository root
on sys.path first).
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]


def synchronize(device: torch.device | str) -> None:
    """Wait for the device's queued work, so wall-clock timings cover it (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {cpu_count()} cores, {torch.get_num_threads()} torch threads"


def environment(device: torch.device | str) -> dict[str, Any]:
    """What a result was measured on: the device and its name, torch and CUDA versions, CPU cores."""
    return {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
            "cuda": torch.version.cuda, "cpus": cpu_count()}


def write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON through a temporary file: a run killed mid-write leaves the previous
    complete file (scripts rewrite their results after each measurement, so a timeout keeps what was done)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def exit_on_sigterm() -> None:
    """Let SIGTERM (gpu.sh's timeout) end the script as an exception would: temporary folders are removed."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def pipe(*args: str) -> None:
    """Run a `pipe` command as a user runs it, in a child process (the CLI sets signal handlers and
    worker start-up of its own); raise RuntimeError with the end of its output when it fails."""
    command = [sys.executable, "-m", "pipeline.cli", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"`pipe {shlex.join(args)}` exited with {done.returncode}: " + " | ".join(tail))


def build_training_shards(root: Path, images: int, size: int, shards: int, hints: str = "patches",
                          shard_args: str = "", workers: int | None = None) -> None:
    """A dataset trainers can read: `images` generated size x size illustrations (as `pipe prepare` leaves
    them), `pipe extract` xdog lines, then `pipe shard` into at least `shards` train shards (a loader
    worker needs a shard of its own), with `hints` and the default draft artifacts; `shard_args` are more
    `pipe shard` options (e.g. "--jpeg color,line,draft")."""
    from pipeline.demo.illustrations import make_prepared_dataset

    workers = workers or max(1, min(cpu_count(), 8))
    make_prepared_dataset(root, images, size=size)
    pipe("extract", str(root), "--method", "xdog", "--workers", str(workers))
    per_shard = max(1, math.floor(images / max(1, shards)))
    pipe("shard", str(root), "--lines", "xdog", "--hints", hints, "--val", "0", "--shard-samples", str(per_shard),
         "--workers", str(workers), *shlex.split(shard_args))


def prepare_lines_dataset(root: Path, images: int, size: int, workers: int, source: Path | None = None) -> None:
    """A dataset ready to shard: `images` generated size x size illustrations (or `pipe prepare` of the
    images in `source`) and their xdog lines, extracted in this process."""
    from pipeline.demo.illustrations import make_prepared_dataset
    from pipeline.extract.config import ExtractConfig
    from pipeline.extract.stage import run_extract

    if source is None:
        make_prepared_dataset(root, images, size=size)
    else:
        pipe("prepare", str(source), str(root), "--size", str(size), "--workers", str(workers))
    run_extract(ExtractConfig(root=root, methods=("xdog",), workers=workers, device="cpu"))
