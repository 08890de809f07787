"""`pipe shard --contact-sheet OUT.png`: a grid to look at what the shards hold.

One row per sample (the first N in shard order): colour, line, hint, draft. The hint tile shows the
line art faintly, and each given hint pixel grown to a dot of HINT_DOT tile pixels (the colour of the
nearest given pixel, so neighbouring hints keep their own colours) with a dark outline: a one-pixel
point or a C-FID stroke, which shrinking to the tile would average away, stays visible.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from train.loader import decode_sample, shard_urls

COLUMNS = ("color", "line", "hint", "draft")
HEADER = 22
BACKDROP = 128
HINT_DOT = 3  # tile pixels each hint pixel reaches at least (its radius)
OUTLINE = (20, 20, 20)


def _tile(sample: dict, name: str, size: int) -> np.ndarray:
    """One member as an RGB tile of size x size (blank when the sample lacks it)."""
    if name not in sample:
        return np.full((size, size, 3), 255, np.uint8)
    image = sample[name].transpose(1, 2, 0)
    if image.shape[2] == 4:
        return _hint_tile(image, sample.get("line"), size)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def _hint_tile(hint: np.ndarray, line: np.ndarray | None, size: int) -> np.ndarray:
    """The RGBA hint over the faint line art, every given pixel grown to a dot with an outline."""
    height, width = hint.shape[:2]
    given = hint[..., 3] > 0
    reach = max(1, int(np.ceil(HINT_DOT * max(height, width) / size)))  # in sample pixels
    # Each pixel within `reach` of a given one takes the colour of the nearest given pixel.
    distance, nearest = cv2.distanceTransformWithLabels((~given).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    grown = given.any() & (distance <= reach)
    colours = np.zeros((int(nearest.max()) + 1, 3), np.uint8)
    colours[nearest[given]] = hint[..., :3][given]
    painted = colours[nearest]
    if line is not None:
        backdrop = np.repeat(line.transpose(1, 2, 0)[..., :1], 3, axis=2) // 2 + 128  # the drawing, faint
        backdrop = cv2.resize(backdrop, (width, height), interpolation=cv2.INTER_AREA) if backdrop.shape[:2] != (height, width) else backdrop
    else:
        backdrop = np.full((height, width, 3), BACKDROP, np.uint8)
    image = np.where(grown[..., None], painted, backdrop)
    tile = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(grown.astype(np.uint8) * 255, (size, size), interpolation=cv2.INTER_AREA) > 127
    ring = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    tile[ring & ~mask] = OUTLINE
    return tile


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
