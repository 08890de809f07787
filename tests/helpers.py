"""Inputs the tests generate, and small wrappers to run stages on them."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
from PIL import Image

from manifests.ledger import Ledger
from manifests.schema import PREPARED
from pipeline.demo.illustrations import make_illustration, make_prepared_dataset, save_rgb
from pipeline.prepare.stage import PrepareConfig, PrepareStage
from pipeline.runner import RunnerConfig, RunReport, run_stage

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def picture(seed: int, width: int = 700, height: int = 600) -> np.ndarray:
    return make_illustration(np.random.default_rng(seed), width, height)


def run_prepare(source: Path, root: Path, workers: int = 0, **config: object) -> tuple[RunReport, pa.Table]:
    stage = PrepareStage(source=source, root=root, config=PrepareConfig(**config))
    report = run_stage(stage, root, RunnerConfig(workers=workers))
    return report, Ledger(root, PREPARED).read()


def rows_by_name(table: pa.Table) -> dict[str, dict]:
    """Ledger rows keyed by the input's file name (one row per input)."""
    rows = {}
    for row in table.to_pylist():
        name = Path(row["source"]).name
        assert name not in rows, f"two rows for {name}"
        rows[name] = row
    return rows


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height but carries a few bytes of pixel data: a decompression bomb shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def write_bad_inputs(folder: Path) -> dict[str, tuple[str, str | None]]:
    """The issue's folder of awkward inputs; returns {file name: (status, reason)} expected from prepare."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, tuple[str, str | None]] = {}

    (folder / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = ("rejected", "decode_error")

    jpeg = cv2.imencode(".jpg", picture(1))[1].tobytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    expected["truncated.jpg"] = ("rejected", "decode_error")

    (folder / "notes.jpg").write_text("these are my notes, not a picture\n")
    expected["notes.jpg"] = ("rejected", "decode_error")

    (folder / "error.png").write_text("<!DOCTYPE html>\n<html><head><title>503</title></head><body>busy</body></html>")
    expected["error.png"] = ("rejected", "decode_error")

    Image.fromarray(picture(2)).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    expected["cmyk.jpg"] = ("ok", None)

    cv2.imwrite(str(folder / "deep.png"), cv2.cvtColor(picture(3), cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    expected["deep.png"] = ("ok", None)

    rgba = np.dstack([picture(4), np.full((600, 700), 255, np.uint8)])
    rgba[:, :350, 3] = 0  # left half fully transparent over black pixels
    rgba[:, :350, :3] = 0
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    expected["alpha.png"] = ("ok", None)

    frames = [Image.fromarray(picture(seed)).quantize(256) for seed in (5, 6, 7)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    expected["animated.gif"] = ("ok", None)

    (folder / "bomb.png").write_bytes(png_header_only(30000, 30000))
    expected["bomb.png"] = ("rejected", "too_large")
    return expected


def jpeg_with_orientation(rgb: np.ndarray, orientation: int) -> bytes:
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


__all__ = ["REAL_DATA", "jpeg_with_orientation", "make_prepared_dataset", "picture", "png_header_only", "rows_by_name", "run_prepare", "save_rgb", "write_bad_inputs"]


def make_sharded_dataset(root: Path, count: int, size: int, *shard_options: str) -> Path:
    """`count` generated size x size images, their xdog line art, and `pipe shard` with `shard_options`."""
    from pipeline.cli import main  # noqa: PLC0415 - the CLI is what the tests drive

    make_prepared_dataset(root, count, size=size)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), *shard_options, "--workers", "0"]) == 0
    return root
