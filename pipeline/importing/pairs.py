"""One pair in, one ledger row out: the colour through prepare's decoding, filters and crop, the sketch
through the same crop so the two stay aligned.

The colour half is checked as `pipe prepare` checks an image (pixel limit, short side, aspect,
grayscale, brightness: prepare's own functions and messages); the sketch half must instead be grey
(at most `max_sketch_color` of its pixels coloured) and the same size as the colour. One crop box is
computed from the colour half and applied to both, then both are resized to size x size: the colour
goes to prepared/<ab>/<key>.png (RGB), the sketch, made grey, to lines/real/<ab>/<key>.png, both
through temporary names.

The key is the SHA-256 of the bytes the colour comes from: the colour file (folders layout; the same
key `pipe prepare` gives that file) or the side-by-side file (its colour half has no bytes of its
own). Bytes, not decoded pixels: a JPEG decodes slightly differently across libjpeg versions, bytes
hash the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from manifests import reasons
from manifests.atomic import write_bytes_atomic
from manifests.images import encode_png, encode_rgb_png
from manifests.layout import PREPARED_TREE
from manifests.schema import STATUS_FAILED, STATUS_OK, STATUS_REJECTED
from pipeline.prepare import decode
from pipeline.prepare.crop import Box, center_box, crop_square, fit_and_pad
from pipeline.prepare.measure import measure_colors, perceptual_hash, sample_pixels
from pipeline.prepare.rejected import Rejected
from pipeline.prepare.stage import CropMode, PrepareConfig
from pipeline.prepare.stage import check_colors, check_size  # prepare's filters, messages and row columns
from pipeline.importing.sources import Layout, Order, PairFiles
from pipeline.runner import StageContext

# The line method imported line art is filed under: lines/real/, `real/<key>` rows of lines.parquet.
REAL_METHOD = "real"
IMPORT_CROPS = (CropMode.center, CropMode.pad)


@dataclass(frozen=True)
class ImportConfig:
    """Every setting of `pipe import pairs`; `filters` holds prepare's thresholds, crop and output options."""

    layout: Layout
    order: Order = Order.color_sketch
    color_dir: str = "color"
    sketch_dir: str = "sketch"
    filters: PrepareConfig = field(default_factory=PrepareConfig)
    # A sketch is line art when at most this share of its pixels have chroma above filters.chroma_threshold.
    max_sketch_color: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "layout", Layout(self.layout))
        object.__setattr__(self, "order", Order(self.order))
        if self.filters.crop not in IMPORT_CROPS:
            raise ValueError(f"--crop must be one of: {', '.join(c.value for c in IMPORT_CROPS)} (got {self.filters.crop.value!r})")

    def options(self) -> dict[str, Any]:
        """What decides the rows and files, by flag (a resume must keep them)."""
        shared = ("--size", "--crop", "--min-side", "--max-aspect", "--max-pixels", "--chroma-threshold",
                  "--min-color-fraction", "--min-brightness", "--max-brightness", "--png-compression")
        prepare_options = self.filters.options()
        side_by_side = self.layout is Layout.side_by_side
        return {
            "--layout": self.layout.value,
            "--order": self.order.value if side_by_side else None,
            "--color-dir": None if side_by_side else self.color_dir,
            "--sketch-dir": None if side_by_side else self.sketch_dir,
            "--max-sketch-color": self.max_sketch_color,
            **{flag: prepare_options[flag] for flag in shared},
        }

    def line_params(self) -> dict[str, Any]:
        """What the lines.parquet `params` of an imported line records (how the file was made)."""
        params: dict[str, Any] = {"import": self.layout.value, "crop": self.filters.crop.value, "size": self.filters.size, "grey": "rec601"}
        if self.layout is Layout.side_by_side:
            params["order"] = self.order.value
        return params


class _ReadFailed(Exception):
    """A file of the pair could not be read at all: a `failed` row (a later run may succeed)."""


def content_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def base_row(files: PairFiles, config: ImportConfig) -> dict[str, Any]:
    return {
        "pair": files.id,
        "key": "",
        "layout": config.layout.value,
        "split": files.split,
        "color_source": files.color,
        "sketch_source": files.sketch,
        # Only ok rows take part in duplicate detection; every other row is final as it is.
        "dedupe_settled": True,
    }


def import_pair(files: PairFiles, config: ImportConfig, context: StageContext) -> dict[str, Any]:
    """The ledger row of one pair, its two outputs written when it is ok."""
    row = base_row(files, config)
    if files.problem is not None:
        return {**row, "status": STATUS_REJECTED, "reason": files.problem[0], "detail": files.problem[1]}
    try:
        color, sketch = _read_halves(files, row, config)
        return _check_and_write(color, sketch, row, config, context)
    except Rejected as rejection:
        return {**row, "status": STATUS_REJECTED, "reason": rejection.reason, "detail": rejection.detail}
    except _ReadFailed as failure:
        return {**row, "status": STATUS_FAILED, "reason": reasons.READ_ERROR, "detail": str(failure)}


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _ReadFailed(f"{what}: {type(exc).__name__}: {exc}") from None


def _read_halves(files: PairFiles, row: dict, config: ImportConfig) -> tuple[np.ndarray, np.ndarray]:
    """The colour and sketch halves as RGB arrays (EXIF-oriented), with what was learnt put in `row`."""
    assert files.color is not None and files.sketch is not None
    if config.layout is Layout.side_by_side:
        data = _read(files.color, "pair file")
        row.update(key=content_key(data), source_bytes=len(data))
        both = _decode(data, "", row, config.filters)
        width = both.shape[1]
        if width % 2:
            raise Rejected(reasons.ODD_WIDTH, f"width {width} px is odd: a side-by-side pair splits into two halves of equal width")
        left, right = np.ascontiguousarray(both[:, : width // 2]), np.ascontiguousarray(both[:, width // 2 :])
        return (left, right) if config.order is Order.color_sketch else (right, left)
    color_data = _read(files.color, "colour file")
    row.update(key=content_key(color_data), source_bytes=len(color_data))
    sketch_data = _read(files.sketch, "sketch file")
    row["sketch_bytes"] = len(sketch_data)
    return _decode(color_data, "colour file: ", row, config.filters), _decode(sketch_data, "sketch file: ", None, config.filters)


def _decode(data: bytes, what: str, row: dict | None, filters: PrepareConfig) -> np.ndarray:
    """prepare's decoding (by content, EXIF orientation, every mode to RGB, alpha over white) and pixel limit."""
    try:
        image = decode.open_image(data)
        width, height = image.size
        if row is not None:
            row.update(format=image.format, frames=decode.frame_count(image))
        if width * height > filters.max_pixels:
            raise Rejected(reasons.TOO_LARGE, f"{width}x{height} = {width * height:,} pixels > --max-pixels {filters.max_pixels:,}")
        # Full resolution: a reduced JPEG decode would be a second, different resampling of one half only.
        rgb, _ = decode.load_rgb(image, data)
        return rgb
    except Rejected as rejection:
        raise Rejected(rejection.reason, what + rejection.detail) from None


def _check_and_write(color: np.ndarray, sketch: np.ndarray, row: dict, config: ImportConfig, context: StageContext) -> dict[str, Any]:
    filters = config.filters
    height, width = color.shape[:2]
    row.update(orig_width=width, orig_height=height, sketch_width=sketch.shape[1], sketch_height=sketch.shape[0])
    if sketch.shape[:2] != color.shape[:2]:
        raise Rejected(
            reasons.SIZE_MISMATCH,
            f"colour {width}x{height}, sketch {sketch.shape[1]}x{sketch.shape[0]}: the two halves of a pair must be the same size",
        )
    check_size(width, height, filters)
    sketch_color = measure_colors(sample_pixels(sketch), filters.chroma_threshold).color_fraction
    row["sketch_color_fraction"] = sketch_color
    try:
        check_colors(color, row, filters)
    except Rejected as rejection:
        if rejection.reason == reasons.GRAYSCALE and sketch_color > config.max_sketch_color:
            raise Rejected(reasons.HALVES_SWAPPED, _swapped_detail(row["color_fraction"], sketch_color, config)) from None
        raise
    if sketch_color > config.max_sketch_color:
        raise Rejected(
            reasons.SKETCH_NOT_GREY,
            f"{sketch_color:.1%} of the sketch's pixels have chroma > {filters.chroma_threshold} (> --max-sketch-color {config.max_sketch_color:.0%})",
        )

    grey = cv2.cvtColor(sketch, cv2.COLOR_RGB2GRAY)
    box, color_out, line_out = _crop_both(color, grey, filters)
    key = row["key"]
    color_path = context.layout.sample(PREPARED_TREE, key, "png")
    line_path = context.layout.line_art(REAL_METHOD, key)
    if not color_path.exists():
        # Present already: this run's or a killed run's output of the same bytes (the same file), or
        # the image `pipe prepare` made of this very file, which is left as it is (the stage's
        # finalize makes this pair a duplicate of it). A --redo removes the import's own files first.
        write_bytes_atomic(color_path, encode_rgb_png(color_out, filters.png_compression), tmp_dir=context.tmp_dir)
    write_bytes_atomic(line_path, encode_png(line_out, filters.png_compression), tmp_dir=context.tmp_dir)
    return {
        **row,
        "status": STATUS_OK,
        "crop_x": box.x,
        "crop_y": box.y,
        "crop_w": box.w,
        "crop_h": box.h,
        "width": color_out.shape[1],
        "height": color_out.shape[0],
        "path": context.layout.relative(color_path),
        "line_path": context.layout.relative(line_path),
        "phash": perceptual_hash(color_out),
        "ink_fraction": float(np.count_nonzero(line_out < 128)) / line_out.size,
        "dedupe_settled": False,
    }


def _swapped_detail(color_fraction: float, sketch_color: float, config: ImportConfig) -> str:
    if config.layout is Layout.side_by_side:
        other = Order.sketch_color if config.order is Order.color_sketch else Order.color_sketch
        hint = f"is the order {other.value}? (--order {other.value})"
    else:
        hint = f"are the folders the other way round? (--color-dir {config.sketch_dir} --sketch-dir {config.color_dir})"
    return f"the colour half is grey ({color_fraction:.1%} coloured pixels) and the sketch half is not ({sketch_color:.1%}): {hint}"


def _crop_both(color: np.ndarray, grey: np.ndarray, filters: PrepareConfig) -> tuple[Box, np.ndarray, np.ndarray]:
    """One crop box, from the colour half's size, for both halves; both resized to size x size alike."""
    height, width = color.shape[:2]
    if filters.crop is CropMode.pad:
        return Box(0, 0, width, height), fit_and_pad(color, filters.size), fit_and_pad(grey, filters.size)
    box = center_box(width, height)
    return box, crop_square(color, box, filters.size), crop_square(grey, box, filters.size)


def line_params_json(config: ImportConfig, row: dict) -> str:
    """The `params` of a pair's lines.parquet row: the import's settings and the crop box it used."""
    params = {**config.line_params(), "crop_box": [row["crop_x"], row["crop_y"], row["crop_w"], row["crop_h"]]}
    return json.dumps(params, sort_keys=True)
