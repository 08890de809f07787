"""The CPU side of `pipe extract`: decoding prepared PNGs and encoding line PNGs, in worker processes.

Both report problems as values, not exceptions, so one bad file never stops the run. No PyTorch here:
the CPU workers import this module (pipeline.extract.loader has the DataLoader side).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from manifests.atomic import write_bytes_atomic
from manifests.images import decode_rgb, encode_png
from manifests.layout import DatasetLayout
from manifests.reasons import DECODE_ERROR, ENCODE_ERROR, MISSING_INPUT
from manifests.statuses import STATUS_FAILED, STATUS_OK
from pipeline.errors import is_disk_full
from pipeline.executors import describe_exception
from pipeline.extract.plan import ExtractItem, line_id


def decode_prepared(root: Path, item: ExtractItem) -> dict[str, Any]:
    """{"image": RGB uint8 (H, W, 3) or empty, "reason": "", "detail": ""} of one prepared image."""
    path = root / item.source_path
    empty = np.zeros((0, 0, 3), dtype=np.uint8)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        return {"image": empty, "reason": MISSING_INPUT, "detail": f"{type(exc).__name__}: {exc}"}
    rgb = decode_rgb(data) if data.size else None
    if rgb is None:
        return {"image": empty, "reason": DECODE_ERROR, "detail": f"OpenCV cannot decode {path.name} ({data.size} bytes)"}
    return {"image": rgb, "reason": "", "detail": ""}


@dataclass(frozen=True)
class LineOutput:
    """One extracted line image on its way to disk, with what its ledger row needs."""

    item: ExtractItem
    method: str
    params: dict[str, Any]
    lines: np.ndarray  # uint8 (H, W)


@dataclass(frozen=True)
class RowContext:
    root: Path
    tmp_dir: Path
    seed: int
    device: str
    png_compression: int | None


def base_row(item: ExtractItem, method: str, context: RowContext) -> dict[str, Any]:
    return {
        "key": item.key,
        "line": line_id(method, item.key),
        "method": method,
        "seed": context.seed,
        "source_path": item.source_path,
        "device": context.device,
    }


def failed_row(item: ExtractItem, method: str, context: RowContext, reason: str, detail: str, params: dict | None = None) -> dict[str, Any]:
    row = base_row(item, method, context)
    row.update(status=STATUS_FAILED, reason=reason, detail=detail, params=json.dumps(params, sort_keys=True) if params else None)
    return row


def output_failed(output: LineOutput, reason: str, detail: str, context: RowContext) -> list[dict[str, Any]]:
    """The failed row of one output that could not be written (the executor's failure callback)."""
    return [failed_row(output.item, output.method, context, reason, detail, output.params)]


def write_line(output: LineOutput, context: RowContext) -> list[dict[str, Any]]:
    """Encode and atomically write one output (in an encoder process); its ledger row."""
    layout = DatasetLayout(context.root)
    try:
        path = layout.line_art(output.method, output.item.key)
        # A temporaries folder per process: in one shared folder the workers queue for its lock at
        # every create and rename (measured: 5-10% of a CPU run's rate with 2 workers).
        tmp_dir = context.tmp_dir / str(os.getpid())
        write_bytes_atomic(path, encode_png(output.lines, context.png_compression), tmp_dir=tmp_dir)
    except (OSError, RuntimeError) as exc:  # permissions, an unencodable array: a foreseen failure
        if is_disk_full(exc):  # no sample's fault: the run ends with one line, the rerun writes it
            raise
        return output_failed(output, ENCODE_ERROR, describe_exception(exc), context)
    row = base_row(output.item, output.method, context)
    row.update(
        status=STATUS_OK,
        params=json.dumps(output.params, sort_keys=True),
        path=layout.relative(path),
        width=output.lines.shape[1],
        height=output.lines.shape[0],
        ink_fraction=float(np.count_nonzero(output.lines < 128)) / output.lines.size,
    )
    return [row]
