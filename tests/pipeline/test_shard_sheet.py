"""`pipe shard --contact-sheet`: point hints, shrunk with their sample to a tile, stay visible."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from pipeline.cli import main
from pipeline.shard.sheet import HEADER
from tests.helpers import make_sharded_dataset

SIZE, TILE = 512, 256  # the sheet's default tile: one hint pixel of the sample is 1/4 of a tile pixel


def first_hint(root: Path) -> np.ndarray:
    """The first train sample's RGBA hint, as stored."""
    with tarfile.open(root / "shards" / "train" / "00000.tar") as tar:
        member = next(m for m in tar if m.name.endswith(".hint.png"))
        data = tar.extractfile(member).read()
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def test_point_hints_are_dots_of_their_colour_in_the_sheet(tmp_path):
    root = make_sharded_dataset(tmp_path / "root", 2, SIZE, "--hints", "points", "--val", "0", "--artifacts", "none")
    out = tmp_path / "sheet.png"
    assert main(["shard", str(root), "--contact-sheet", str(out)]) == 0
    sheet = np.asarray(Image.open(out).convert("RGB")).astype(int)
    tile = sheet[HEADER : HEADER + TILE, 2 * TILE : 3 * TILE]  # the first row's hint column
    hint = first_hint(root)
    given = np.argwhere(hint[..., 3] > 0)
    assert 0 < len(given) < 200, "points: a few single pixels"
    scale = TILE / SIZE
    shown = 0
    for y, x in given:
        colour = hint[y, x, :3].astype(int)
        ty, tx = int(y * scale), int(x * scale)
        window = tile[max(0, ty - 2) : ty + 3, max(0, tx - 2) : tx + 3]
        # A dot: several tile pixels within a few levels of the hint's own colour.
        close = (np.abs(window - colour).max(axis=2) <= 12).sum()
        shown += close >= 4
    assert shown >= 0.9 * len(given), f"{shown} of {len(given)} hint pixels visible"
    outline = (np.abs(tile - 20).max(axis=2) <= 2).sum()
    assert outline >= 4 * len(given) // 2, "each dot is outlined"
