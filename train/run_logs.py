"""What a training run writes beside its checkpoints: metrics.jsonl, TensorBoard logs, key records, sample grids.

Every write names its file when the operating system refuses it: a full disk fails a buffered write
(`file.write`, `flush`, TensorBoard's writer thread) with an OSError that carries no file name, so
`named_os_errors` gives it the path, and the error goes on to the caller unwrapped (pipe prints it in
one line). Closing after such an error never replaces it with a second one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np

from manifests.atomic import write_bytes_atomic


@contextmanager
def named_os_errors(path: Path) -> Iterator[None]:
    """Re-raise an OSError that names no file as the same error naming `path` (ENOSPC stays ENOSPC)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def forget_after(metrics: Path, step: int) -> None:
    """Drop metrics.jsonl records after `step` (logged by a run killed after its last checkpoint):
    the resumed run logs those steps again, and a record per step must stay unique."""
    if not metrics.is_file():
        return
    lines = metrics.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        write_bytes_atomic(metrics, "".join(kept).encode())


def write_text(path: Path, text: str) -> None:
    with named_os_errors(path):
        path.write_text(text)


class RunLogs:
    """The open logs of one process's run: rank 0 writes metrics, TensorBoard and samples; every rank
    may record its keys. `resumed_from` is the checkpoint's step (0 for a new run)."""

    def __init__(self, run_dir: Path, rank: int, resumed_from: int, record_keys: bool) -> None:
        self.run_dir, self.rank = run_dir, rank
        self.metrics_path = run_dir / "metrics.jsonl"
        self.tb_dir = run_dir / "tb"
        self.keys_path = run_dir / "keys" / f"rank{rank}.txt"
        self.metrics: IO[str] | None = None
        self.keys: IO[str] | None = None
        self.writer = None
        if rank == 0:
            forget_after(self.metrics_path, resumed_from)
            with named_os_errors(self.metrics_path):
                self.metrics = open(self.metrics_path, "a")  # noqa: SIM115 - open for the run
            with named_os_errors(self.tb_dir):
                self.writer = _summary_writer(self.tb_dir, purge_step=resumed_from + 1 if resumed_from else None)
        if record_keys:
            self.keys_path.parent.mkdir(parents=True, exist_ok=True)
            with named_os_errors(self.keys_path):
                self.keys = open(self.keys_path, "a")  # noqa: SIM115 - open for the run

    def record_keys(self, step: int, keys: list[str]) -> None:
        if self.keys is not None:
            with named_os_errors(self.keys_path):
                self.keys.write(f"{step} {' '.join(keys)}\n")

    def log(self, step: int, record: dict[str, Any]) -> None:
        """One metrics.jsonl line (flushed: a killed run keeps it) and its TensorBoard scalars."""
        with named_os_errors(self.metrics_path):
            self.metrics.write(json.dumps({"step": step, **record}) + "\n")
            self.metrics.flush()
        with named_os_errors(self.tb_dir):
            for name, value in record.items():
                self.writer.add_scalar(f"train/{name}", value, step)

    def sample(self, step: int, grid: np.ndarray) -> Path:
        """samples/step_NNNNNNN.png (cv2.imwrite says nothing when it fails: the bytes are written here) and TensorBoard."""
        path = self.run_dir / "samples" / f"step_{step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        ok, png = cv2.imencode(".png", cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"could not encode the sample grid of step {step} as PNG")
        with named_os_errors(path):
            write_bytes_atomic(path, png.tobytes())
        with named_os_errors(self.tb_dir):
            self.writer.add_image("samples", grid, step, dataformats="HWC")
        return path

    def close(self, failing: bool = False) -> None:
        """Close every log; `failing`: an error is already on its way, so a second one (the same full
        disk refusing the last flush) is dropped instead of replacing it."""
        first: OSError | None = None
        for path, handle in ((self.metrics_path, self.metrics), (self.keys_path, self.keys), (self.tb_dir, self.writer)):
            if handle is None:
                continue
            try:
                with named_os_errors(path):
                    handle.close()
            except OSError as exc:
                first = first or exc
        self.metrics = self.keys = self.writer = None
        if first is not None and not failing:
            raise first


def _summary_writer(folder: Path, purge_step: int | None = None):
    from torch.utils.tensorboard import SummaryWriter

    # purge_step: TensorBoard hides what an interrupted run logged after its last checkpoint.
    return SummaryWriter(str(folder), purge_step=purge_step)
