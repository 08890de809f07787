"""The CPU side of `pipe extract`: decoding prepared PNGs and encoding line PNGs, in worker processes.

Decoding runs in a torch DataLoader (its workers hand images to the main process through shared
memory, a few batches ahead); encoding and writing run in a process pool. Both report problems as
values, not exceptions, so one bad file never stops the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from manifests.atomic import write_bytes_atomic
from manifests.layout import DatasetLayout
from manifests.schema import STATUS_FAILED, STATUS_OK
from pipeline.extract.plan import ExtractItem, line_id
from pipeline.runner import describe_exception

REASON_MISSING_INPUT = "missing_input"
REASON_DECODE_ERROR = "decode_error"
REASON_ENCODE_ERROR = "encode_error"
OUTPUT_TREE = "lines"


class DecodeDataset(Dataset):
    """Item i -> {"index": i, "image": RGB uint8 (H, W, 3) or empty, "reason": "", "detail": ""}."""

    def __init__(self, root: Path, items: list[ExtractItem]) -> None:
        self.root, self.items = root, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = self.root / self.items[index].source_path
        empty = np.zeros((0, 0, 3), dtype=np.uint8)
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as exc:
            return {"index": index, "image": empty, "reason": REASON_MISSING_INPUT, "detail": f"{type(exc).__name__}: {exc}"}
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if bgr is None:
            return {"index": index, "image": empty, "reason": REASON_DECODE_ERROR, "detail": f"OpenCV cannot decode {path.name} ({data.size} bytes)"}
        return {"index": index, "image": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "reason": "", "detail": ""}


def collate_decoded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """A chunk of decoded samples as few tensors as possible: one stack per image shape.

    Each tensor crosses from the decode worker to the main process through shared memory with a
    fixed cost, so one stack per chunk is much cheaper than one tensor per image.
    """
    by_shape: dict[tuple[int, ...], list[dict[str, Any]]] = {}
    failures = []
    for sample in samples:
        if sample["reason"]:
            failures.append((sample["index"], sample["reason"], sample["detail"]))
        else:
            by_shape.setdefault(sample["image"].shape, []).append(sample)
    stacks = [([s["index"] for s in group], torch.from_numpy(np.stack([s["image"] for s in group]))) for group in by_shape.values()]
    return {"stacks": stacks, "failures": failures}


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


def write_lines(outputs: list[LineOutput], context: RowContext) -> list[dict[str, Any]]:
    """Encode and atomically write each output; one ledger row per output (failed rows on errors)."""
    layout = DatasetLayout(context.root)
    params = [] if context.png_compression is None else [cv2.IMWRITE_PNG_COMPRESSION, context.png_compression]
    rows = []
    for output in outputs:
        try:
            ok, encoded = cv2.imencode(".png", output.lines, params)
            if not ok:
                raise RuntimeError("OpenCV could not encode the PNG")
            path = layout.sample(f"{OUTPUT_TREE}/{output.method}", output.item.key, "png")
            write_bytes_atomic(path, encoded.tobytes(), tmp_dir=context.tmp_dir)
        except Exception as exc:  # disk full, permissions: record and go on
            rows.append(failed_row(output.item, output.method, context, REASON_ENCODE_ERROR, describe_exception(exc), output.params))
            continue
        row = base_row(output.item, output.method, context)
        row.update(
            status=STATUS_OK,
            params=json.dumps(output.params, sort_keys=True),
            path=layout.relative(path),
            width=output.lines.shape[1],
            height=output.lines.shape[0],
            ink_fraction=float(np.count_nonzero(output.lines < 128)) / output.lines.size,
        )
        rows.append(row)
    return rows
