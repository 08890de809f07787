"""The line sources `pipe eval --lines` colours each sample from, side by side in one report.

`shard` is the line art each sample carries in its shard (`line.png`: the method `pipe shard` drew for
it, augmented as drawn). Any other name is a line method of the dataset root, read from
ROOT/lines.parquet (its ok rows' `path`) rather than from the shards, which hold only the drawn
method: `real` (artists' line drawings, `pipe import pairs`) or an extraction method (`xdog`, ...).
A root line is resized to the colour image's size with area interpolation, as `pipe shard` resizes
it, and is not augmented: every model is scored on the method's own lines. A sample without an ok
line of a method is not scored for that source (`no_lines`); one whose file is gone or does not
decode, `missing_input` / `decode_error`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow.compute as pc

from extractors.methods import METHODS
from manifests.ledger import Ledger
from manifests.reasons import DECODE_ERROR, MISSING_INPUT
from manifests.schema import LINES, STATUS_OK
from pipeline.importing.pairs import REAL_METHOD
from synth.hints import parse_names

SHARD_LINES = "shard"


def line_source_choices() -> tuple[str, ...]:
    return (SHARD_LINES, REAL_METHOD, *METHODS)


def parse_line_sources(text: str) -> tuple[str, ...]:
    """`real,xdog` -> ("real", "xdog"); a ValueError names an unknown source and the choices."""
    return parse_names(text, line_source_choices(), "line source")


def source_label(source: str) -> str:
    return "shard lines (as drawn by pipe shard)" if source == SHARD_LINES else f"{source} lines"


def _how_to_make(source: str, root: Path) -> str:
    if source == REAL_METHOD:
        return f"`pipe import pairs SOURCE {root}` brings artists' line drawings in as the method {REAL_METHOD}"
    return f"run `pipe extract {root} --method {source}` first"


def root_line_paths(root: Path, sources: tuple[str, ...], keys: set[str] | None = None) -> dict[str, dict[str, str]]:
    """{method: {key: line path relative to ROOT}} of the ok rows of lines.parquet for each source
    but `shard`, kept to `keys` when given. A method with no ok line at all in ROOT is an error."""
    methods = [source for source in sources if source != SHARD_LINES]
    if not methods:
        return {}
    ledger = Ledger(root, LINES)
    table = ledger.read() if ledger.exists() else None
    paths: dict[str, dict[str, str]] = {}
    for method in methods:
        rows = {}
        if table is not None and table.num_rows:
            chosen = table.filter(pc.and_(pc.equal(table["method"], method), pc.equal(table["status"], STATUS_OK)))
            rows = dict(zip(chosen["key"].to_pylist(), chosen["path"].to_pylist()))
        if not rows:
            raise ValueError(f"--lines {method}: no {method} line art in {root / 'lines.parquet'}: {_how_to_make(method, root)}")
        paths[method] = {key: path for key, path in rows.items() if keys is None or key in keys}
    return paths


def read_root_line(root: Path, relative: str, height: int, width: int) -> np.ndarray | tuple[str, str]:
    """uint8 (1, H, W) line art at the colour's size, or (reason, detail) when the file cannot be read."""
    path = root / relative
    if not path.is_file():
        return MISSING_INPUT, f"{relative} is gone (lines.parquet lists it)"
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        return DECODE_ERROR, f"{relative}: does not decode"
    if gray.shape != (height, width):
        gray = cv2.resize(gray, (width, height), interpolation=cv2.INTER_AREA)
    return gray[None]


def no_lines_detail(source: str) -> str:
    return f"no ok {source} line in lines.parquet"


