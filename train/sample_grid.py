"""The sample grids a training run writes: the same distinct samples in every grid of a run.

A small dataset streamed endlessly through a shuffle buffer puts one sample into a batch several
times, so a grid of "the current batch" can show one picture in most of its rows. `SampleRows`
keeps instead the first distinct samples (by key) of the run's first batches, as their step trained
on them (cropped, at the training size, with the hints and drafts drawn for them), and every grid
shows those, each once. `sample_grid` lays them out under a labelled header.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

GRID_COLUMNS = ("line", "hint", "draft", "output", "truth")


def _take_rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """The given rows of a batch: tensors and lists with one entry per sample; other values as they are."""
    size = len(batch["__key__"])
    taken: dict[str, Any] = {}
    for name, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == size:
            taken[name] = value[rows].detach().clone()
        elif isinstance(value, (list, tuple)) and len(value) == size:
            taken[name] = [value[i] for i in rows]
        else:
            taken[name] = value
    return taken


def _joined_rows(first: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    joined = dict(first)
    for name, value in more.items():
        if isinstance(value, torch.Tensor) and name in first:
            joined[name] = torch.cat([first[name], value])
        elif isinstance(value, list) and name in first:
            joined[name] = [*first[name], *value]
    return joined


class SampleRows:
    """The first `count` distinct samples of a run's batches, kept for its grids (one process's run:
    a resumed run draws its own from its first batches)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.batch: dict[str, Any] | None = None

    @property
    def keys(self) -> list[str]:
        return list(self.batch["__key__"]) if self.batch is not None else []

    def offer(self, batch: dict[str, Any]) -> None:
        """Keep the samples of `batch` (as trained on) whose keys are new, until `count` are kept."""
        if len(self.keys) >= self.count or not batch.get("__key__"):
            return
        seen = set(self.keys)
        rows = []
        for row, key in enumerate(batch["__key__"]):
            if key not in seen and len(seen) < self.count:
                seen.add(key)
                rows.append(row)
        if rows:
            taken = _take_rows(batch, rows)
            self.batch = taken if self.batch is None else _joined_rows(self.batch, taken)

    def padded(self) -> dict[str, Any]:
        """The kept samples repeated up to `count` rows: the generator sees a batch of the size it trains on
        (BatchNorm in training mode needs more than one sample where a feature map is 1x1)."""
        assert self.batch is not None, "no batch offered yet"
        kept = len(self.keys)
        rows = [i % kept for i in range(max(self.count, kept))]
        return _take_rows(self.batch, rows)


def sample_grid(batch: dict, fake: torch.Tensor, rows: int = 4, title: str = "") -> np.ndarray:
    """uint8 RGB grid under a header strip (`title`, then each column's name), one row per sample:
    line | hint (over grey) | draft | output | truth."""
    count = min(rows, fake.shape[0])
    height, width = fake.shape[-2:]

    def rgb(image: torch.Tensor) -> torch.Tensor:
        return image.expand(3, -1, -1) if image.shape[0] == 1 else image

    tiles = []
    for i in range(count):
        line = rgb(batch["line"][i])
        if "hint" in batch:
            hint = batch["hint"][i]
            hint = hint[:3] * hint[3:] + 0.5 * (1 - hint[3:])
        else:
            hint = torch.full((3, height, width), 0.5, device=fake.device)
        draft = batch["draft"][i] if "draft" in batch else torch.ones((3, height, width), device=fake.device)
        output = rgb((fake[i] + 1) / 2)
        tiles.append(torch.cat([line, hint, draft, output, batch["color"][i]], dim=2))
    grid = torch.cat(tiles, dim=1).clamp(0, 1)
    image = (grid.permute(1, 2, 0).float().cpu().numpy() * 255).round().astype(np.uint8)
    return np.concatenate([_grid_header(width, title), image])


def _grid_header(tile: int, title: str) -> np.ndarray:
    """A white strip as wide as the grid: `title` on the first text line, each column's name over its tile below."""
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    lines = [[(title, 0, len(GRID_COLUMNS) * tile)]] if title else []
    lines.append([(name, i * tile, tile) for i, name in enumerate(GRID_COLUMNS)])
    # One scale for every label: the largest (up to 0.5) at which each fits its space, 2 px margins.
    scale = min(0.5, *(0.9 * (space - 4) / cv2.getTextSize(text, font, 1.0, thickness)[0][0] for line in lines for text, _, space in line))
    line_height = cv2.getTextSize("Hg", font, scale, thickness)[0][1] + 6
    strip = np.full((line_height * len(lines) + 2, len(GRID_COLUMNS) * tile, 3), 255, np.uint8)
    for row, line in enumerate(lines):
        for text, x, _ in line:
            cv2.putText(strip, text, (x + 2, line_height * (row + 1) - 3), font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return strip
