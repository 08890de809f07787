"""`pipe extract` on a CPU: each worker decodes a prepared image, runs the classic methods' OpenCV forms
on it and writes the lines, so no image crosses between processes (only the items' paths and the rows).

This is the fast path on CPUs (see extractors.opencv_forms for why, and bench/extract.py for the
figures); the device batches of pipeline.extract.stage stay for CUDA and for the network methods.
Parameters are drawn from the same generators as every other path, and each row records
`impl: opencv` in its params.
"""

from __future__ import annotations

import atexit
import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from extractors import opencv_forms
from pipeline.extract.io import LineOutput, RowContext, decode_prepared, failed_row, write_line
from pipeline.extract.plan import ExtractItem, method_params

if TYPE_CHECKING:
    from pipeline.extract.config import ExtractConfig


def opencv_methods(methods: tuple[str, ...], device_type: str) -> tuple[str, ...]:
    """The chosen methods that run as OpenCV forms in the workers: the classic ones, on a CPU."""
    return tuple(m for m in methods if device_type == "cpu" and m in opencv_forms.FORMS)


# glibc's mallopt parameters, and the values a worker sets: buffers up to 32 MiB come from the heap,
# and up to 64 MiB of freed heap is kept for the next image instead of being handed back to the OS.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES, _HEAP_UP_TO_BYTES = 64 << 20, 32 << 20
_BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def start_cpu_worker() -> None:
    """Initializer of the workers of our own process pool (never this process, never Ray's workers).

    Both settings are measured on 512x512 images:
    - Keep freed memory. In a fresh process glibc returns every freed image-sized buffer to the OS
      and the next image faults zeroed pages in again: 360 page faults an image for gray, 2,500 for
      highpass, 10-40% of a worker's time. Raising its trim and mmap thresholds reuses the buffers.
    - End without teardown. A worker's normal interpreter exit tears down every module it imported
      (NumPy, OpenCV, pyarrow), about 0.1 s that the run waits for at its end, for nothing: every file
      is closed and every row sent by then. Registered last, this exit handler runs first.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc; elsewhere (macOS, musl) the defaults stay
    except (OSError, AttributeError):
        pass
    else:
        mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES)
        mallopt(_M_MMAP_THRESHOLD, _HEAP_UP_TO_BYTES)
    atexit.register(os._exit, 0)


@contextmanager
def cpu_worker_environment() -> Iterator[None]:
    """Start the workers of our own pool inside this: they load OpenBLAS (NumPy's, and OpenCV's own)
    with one thread. The forms make no BLAS call, and every extra OpenBLAS thread spins for about 0.1 s
    after it starts, on the cores the workers start on (measured: a run's first lines 0.05 s sooner).
    A process reads the variable when it starts, so it is set in this, the parent, while the pool
    starts its processes. A value the user set is kept."""
    chosen = os.environ.get(_BLAS_THREADS)
    os.environ[_BLAS_THREADS] = chosen or "1"
    try:
        yield
    finally:
        if chosen is None:
            del os.environ[_BLAS_THREADS]


@dataclass(frozen=True)
class OpenCVItem:
    """Decode, extract and write one item (an executor's per-item function): its ledger rows."""

    config: ExtractConfig
    context: RowContext
    settings: dict[str, dict[str, Any]]  # by method: the run's option settings (tuples drawn per sample)

    def __call__(self, item: ExtractItem) -> list[dict]:
        decoded = decode_prepared(self.config.root, item)
        if decoded["reason"]:
            return self.failed(item, decoded["reason"], decoded["detail"])
        rows: list[dict] = []
        for method in item.methods:
            params = {**method_params(self.config, self.settings[method], method, item.key), "impl": opencv_forms.IMPL}
            lines = opencv_forms.extract(method, decoded["image"], params)
            rows += write_line(LineOutput(item, method, params, lines), self.context)
        return rows

    def failed(self, item: ExtractItem, reason: str, detail: str) -> list[dict]:
        return [failed_row(item, method, self.context, reason, detail) for method in item.methods]
