"""`pipe shard --contact-sheet OUT.png`: a grid to look at what the shards hold.

One row per sample (the first N in shard order): colour, line, hint, draft. The hint is drawn over
mid-grey where its alpha says no colour was given, so single hint pixels and faint blurs stay visible.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from train.loader import decode_sample, shard_urls

COLUMNS = ("color", "line", "hint", "draft")
HEADER = 22
BACKDROP = 128


def _tile(sample: dict, name: str, size: int) -> np.ndarray:
    """One member as an RGB tile of size x size (blank when the sample lacks it)."""
    if name not in sample:
        return np.full((size, size, 3), 255, np.uint8)
    image = sample[name].transpose(1, 2, 0)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255
        image = (image[..., :3] * alpha + BACKDROP * (1 - alpha)).round().astype(np.uint8)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def contact_sheet(shards: Path, out: Path, samples: int = 6, tile: int = 256) -> int:
    """Write the sheet; returns the number of samples shown."""
    import webdataset as wds

    dataset = wds.WebDataset(shard_urls(str(shards)), shardshuffle=False, empty_check=False).map(decode_sample)
    rows = []
    for sample in dataset:
        scheme = sample.get("meta", {}).get("hint", {}).get("scheme", "?")
        row = np.concatenate([_tile(sample, name, tile) for name in COLUMNS], axis=1)
        cv2.putText(row, f"{sample['__key__'][:10]} hint={scheme}", (4, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 2, cv2.LINE_AA)
        cv2.putText(row, f"{sample['__key__'][:10]} hint={scheme}", (4, tile - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(row)
        if len(rows) == samples:
            break
    if not rows:
        raise FileNotFoundError(f"no samples in {shards}")
    header = np.full((HEADER, tile * len(COLUMNS), 3), 255, np.uint8)
    for index, name in enumerate(COLUMNS):
        cv2.putText(header, name, (index * tile + 6, HEADER - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([header, *rows], axis=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {out}")
    return len(rows)
