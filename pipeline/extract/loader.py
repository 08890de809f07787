"""Decoding for the device batches of `pipe extract`: a torch DataLoader whose workers hand images to the
main process through shared memory, a few batches ahead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.extract.io import decode_prepared
from pipeline.extract.plan import ExtractItem


class DecodeDataset(Dataset):
    """Item i -> {"index": i, "image": RGB uint8 (H, W, 3) or empty, "reason": "", "detail": ""}."""

    def __init__(self, root: Path, items: list[ExtractItem]) -> None:
        self.root, self.items = root, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"index": index, **decode_prepared(self.root, self.items[index])}


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
