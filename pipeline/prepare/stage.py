"""`pipe prepare`: decode, filter, crop and resize every input to size x size RGB, one ledger row each.

`prepare_sample` is the per-input function (it runs in the runner's workers); `PrepareStage` adapts
it to the runner and adds the one global step, duplicate detection, in `finalize`.
"""

from __future__ import annotations

import enum
import hashlib
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests.atomic import write_bytes_atomic
from manifests.images import encode_rgb_png
from manifests.layout import PREPARED_TREE
from manifests.schema import PREPARED, RAW, STATUS_OK, STATUS_REJECTED, LedgerSchema
from manifests import reasons
from pipeline.prepare import decode
from pipeline.prepare.crop import Box, center_box, crop_square, face_box, fit_and_pad
from pipeline.prepare.dedupe import Candidate, decide_duplicates
from pipeline.prepare.faces import FaceDetectorConfig, detect_faces
from pipeline.prepare.measure import measure_colors, perceptual_hash, sample_pixels
from pipeline.prepare.rejected import Rejected
from manifests.ledger import Ledger
from pipeline.runner import StageContext, WorkItem, any_unsettled_ok_row, failed_row_defaults
from pipeline.recorded_options import RecordedOptions
from pipeline.errors import PipeError
from pipeline.sources import input_files, refuse_own_outputs
from pipeline.up_to_date import file_digest, ledger_digest


class CropMode(str, enum.Enum):
    center = "center"
    pad = "pad"
    face = "face"


class FaceSelection(str, enum.Enum):
    largest = "largest"
    all = "all"


@dataclass(frozen=True)
class PrepareConfig:
    """Every threshold of `pipe prepare`; the CLI's defaults are these."""

    size: int = 512
    crop: CropMode = CropMode.center
    # The seed papers' rule: originals whose short side is under 512 px are not used.
    min_side: int = 512
    max_aspect: float = 2.0
    # Refuse images with more pixels than this before decoding them (decompression bombs).
    max_pixels: int = 100_000_000
    # A pixel counts as coloured when max(R,G,B) - min(R,G,B) exceeds this (0-255).
    chroma_threshold: int = 32
    # Rejected as grayscale when fewer than this share of pixels are coloured.
    min_color_fraction: float = 0.05
    min_brightness: float = 25.0
    max_brightness: float = 240.0
    # Hamming distance between 64-bit perceptual hashes; None disables near-duplicate detection.
    near_duplicate_distance: int | None = 4
    faces: FaceSelection = FaceSelection.largest
    # The face box is widened by this factor (to take in the hair) before it is squared.
    face_widen: float = 1.8
    face_detector: FaceDetectorConfig | None = None
    # zlib level 0-9; None keeps OpenCV's own default, about twice as fast as level 1 for 5% larger files.
    png_compression: int | None = None

    def __post_init__(self) -> None:
        # Accept plain strings from Python callers, as the CLI does.
        object.__setattr__(self, "crop", CropMode(self.crop))
        object.__setattr__(self, "faces", FaceSelection(self.faces))
        if self.crop is CropMode.face and self.face_detector is None:
            raise ValueError("--crop face needs a face cascade")

    def options(self) -> dict[str, Any]:
        """Every setting by its `pipe prepare` flag (what a resume must keep)."""
        values: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "face_detector":
                values["--face-cascade"] = str(value.cascade) if value is not None else None
            else:
                values["--" + item.name.replace("_", "-")] = value.value if isinstance(value, enum.Enum) else value
        return values


def content_key(data: bytes) -> str:
    """A sample's key: the SHA-256 of its original bytes, in hex (no dots, stable everywhere)."""
    return hashlib.sha256(data).hexdigest()


def prepare_sample(data: bytes, row: dict, config: PrepareConfig, context: StageContext) -> list[dict]:
    """Decode, check, crop and write one input. `row` holds what is known already (source, key).

    Returns the ok rows (several with `--faces all`); raises Rejected with what was measured so far
    left in `row`.
    """
    image = decode.open_image(data)
    # Pixel count, short side and aspect do not depend on EXIF orientation: check them on the header.
    stored_w, stored_h = image.size
    row.update(format=image.format, frames=decode.frame_count(image), orig_width=stored_w, orig_height=stored_h)
    decode.check_pixels(stored_w, stored_h, config.max_pixels)
    check_size(stored_w, stored_h, config)

    rgb, turned = decode.load_rgb(image, data, _draft_size(stored_w, stored_h, config))
    width, height = (stored_h, stored_w) if turned else (stored_w, stored_h)
    row.update(orig_width=width, orig_height=height)
    scale = width / rgb.shape[1]  # > 1 when JPEG draft mode decoded at reduced size
    check_colors(rgb, row, config)

    key = row["key"]
    if config.crop is CropMode.pad:
        outputs = [(key, Box(0, 0, width, height), None, fit_and_pad(rgb, config.size))]
    else:
        per_face = config.crop is CropMode.face
        outputs = [
            (
                f"{key}_f{index}" if per_face and config.faces is FaceSelection.all else key,
                box.scaled(scale),
                index if per_face else None,
                crop_square(rgb, box, config.size),
            )
            for index, box in _crop_boxes(rgb, row, config)
        ]
    return [_write_output(row, *output, config, context) for output in outputs]


def _draft_size(width: int, height: int, config: PrepareConfig) -> tuple[int, int] | None:
    """The smallest decode size that loses nothing in the output (None: decode at full size).

    Face crops need full resolution: the face may be a small part of the image.
    """
    if config.crop is CropMode.face:
        return None
    side = min(width, height) if config.crop is CropMode.center else max(width, height)
    factor = config.size / side
    return (int(np.ceil(width * factor)), int(np.ceil(height * factor)))


def check_size(width: int, height: int, config: PrepareConfig) -> None:
    """The short-side and aspect filters (raise Rejected), from the stored size before decoding."""
    short, long = min(width, height), max(width, height)
    if short < config.min_side:
        raise Rejected(reasons.TOO_SMALL, f"short side {short} px < --min-side {config.min_side}")
    if long / short > config.max_aspect:
        raise Rejected(reasons.ASPECT_RATIO, f"aspect {long / short:.2f} > --max-aspect {config.max_aspect}")


def check_colors(rgb: np.ndarray, row: dict, config: PrepareConfig) -> None:
    """The colour filters (grayscale, too dark, too bright: raise Rejected); their measures go into `row`."""
    stats = measure_colors(sample_pixels(rgb), config.chroma_threshold)
    row.update(colorfulness=stats.colorfulness, color_fraction=stats.color_fraction, brightness=stats.brightness)
    if stats.color_fraction < config.min_color_fraction:
        raise Rejected(
            reasons.GRAYSCALE,
            f"{stats.color_fraction:.1%} of pixels have chroma > {config.chroma_threshold} "
            f"(< --min-color-fraction {config.min_color_fraction:.0%})",
        )
    if stats.brightness > config.max_brightness:
        raise Rejected(reasons.TOO_BRIGHT, f"mean brightness {stats.brightness:.0f} > --max-brightness {config.max_brightness:.0f}")
    if stats.brightness < config.min_brightness:
        raise Rejected(reasons.TOO_DARK, f"mean brightness {stats.brightness:.0f} < --min-brightness {config.min_brightness:.0f}")


def _crop_boxes(rgb: np.ndarray, row: dict, config: PrepareConfig) -> list[tuple[int, Box]]:
    """(face index, box in decoded-pixel coordinates) for each output."""
    height, width = rgb.shape[:2]
    if config.crop is CropMode.center:
        return [(0, center_box(width, height))]
    assert config.face_detector is not None
    faces = detect_faces(rgb, config.face_detector)
    row["faces_found"] = len(faces)
    if not faces:
        raise Rejected(reasons.NO_FACE, "the face cascade found no face")
    chosen = faces if config.faces is FaceSelection.all else faces[:1]
    return [(index, face_box(face, width, height, config.face_widen)) for index, face in enumerate(chosen)]


def _write_output(
    row: dict, key: str, box: Box, face_index: int | None, out: np.ndarray, config: PrepareConfig, context: StageContext
) -> dict:
    path = context.layout.sample(PREPARED_TREE, key, "png")
    # A file already there for this key holds these bytes (a killed run's output, an exact duplicate) or an
    # imported pair's colour (`pipe import pairs`), which must stay as its line art was cut to; --redo
    # empties the tree first.
    if not path.exists():
        write_bytes_atomic(path, encode_rgb_png(out, config.png_compression), tmp_dir=context.tmp_dir)
    return {
        **row,
        "key": key,
        "status": STATUS_OK,
        "crop_x": box.x,
        "crop_y": box.y,
        "crop_w": box.w,
        "crop_h": box.h,
        "face_index": face_index,
        "width": out.shape[1],
        "height": out.shape[0],
        "path": context.layout.relative(path),
        "phash": perceptual_hash(out),
        "dedupe_settled": False,
    }


@dataclass(frozen=True)
class PrepareStage:
    source: Path
    root: Path
    config: PrepareConfig

    @property
    def ledger_schema(self) -> LedgerSchema:
        return PREPARED

    def plan(self) -> list[WorkItem]:
        refuse_own_outputs(self.source, self.root)
        items = input_files(self.source, exclude=self.root, every_entry=True)
        if not items:
            raise PipeError(f"no images found in {self.source}")
        return items

    def process(self, item: WorkItem, context: StageContext) -> list[dict]:
        row: dict[str, Any] = {"source": item.id, "key": ""}
        try:
            data = decode.read_input(Path(item.payload), self.config.max_pixels, row)
        except OSError as exc:
            return self.failed_rows(item, reasons.READ_ERROR, f"{type(exc).__name__}: {exc}")
        except Rejected as rejection:  # not a regular file; a large file judged from its header
            return [_rejected_row(row, rejection)]
        row.update(key=content_key(data), source_bytes=len(data))
        try:
            return prepare_sample(data, row, self.config, context)
        except Rejected as rejection:
            return [_rejected_row(row, rejection)]

    def failed_rows(self, item: WorkItem, reason: str, detail: str) -> list[dict]:
        return [failed_row_defaults(PREPARED, item, reason, detail)]

    def finalize(self, ledger: Ledger, context: StageContext) -> list[dict]:
        if not any_unsettled_ok_row(ledger):  # nothing new: the wide columns stay unread
            return []
        return settle_duplicates(ledger.read(), context, self.config.near_duplicate_distance)

    def recorded_options(self) -> RecordedOptions:
        return RecordedOptions(self.config.options())

    def memo_inputs(self) -> dict[str, str | None] | None:
        """A crawl ledger as the source: its digest (a folder of files cannot be told from a footer)."""
        source = self.source.expanduser()
        if not (source.is_file() and source.suffix == ".parquet"):
            return None
        digest = ledger_digest(Ledger(source.parent, RAW)) if source.name == RAW.file_name else file_digest(source)
        return {"source": str(source.resolve()), "source ledger": digest}

    def reset(self, context: StageContext) -> None:
        shutil.rmtree(context.layout.root / PREPARED_TREE, ignore_errors=True)


def _rejected_row(row: dict, rejection: Rejected) -> dict:
    return {**row, "status": STATUS_REJECTED, "reason": rejection.reason, "detail": rejection.detail}


def settle_duplicates(ledger: pa.Table, context: StageContext, max_distance: int | None) -> list[dict]:
    """Decide duplicates among rows not yet settled; returns the rows of every input that changed.

    Files of rejected near duplicates are deleted; exact duplicates share the kept input's file.
    """
    unsettled = pc.and_(pc.equal(ledger["status"], STATUS_OK), pc.invert(pc.fill_null(ledger["dedupe_settled"], False)))
    if not pc.any(unsettled).as_py():
        return []
    rows = ledger.to_pylist()
    candidates, kept = [], []
    for index, row in enumerate(rows):
        if row["status"] != STATUS_OK:
            continue
        area = (row["orig_width"] or 0) * (row["orig_height"] or 0)
        candidate = Candidate(row=index, key=row["key"], source=row["source"], phash=row["phash"], area=area)
        (kept if row["dedupe_settled"] else candidates).append(candidate)
    decisions = decide_duplicates(kept, candidates, max_distance)
    changed_sources = {rows[c.row]["source"] for c in candidates}
    for candidate in candidates:
        row = rows[candidate.row]
        row["dedupe_settled"] = True
        decision = decisions.get(candidate.row)
        if decision is None:
            continue
        if decision.reason == reasons.NEAR_DUPLICATE:
            (context.layout.root / row["path"]).unlink(missing_ok=True)
        row.update(status=STATUS_REJECTED, reason=decision.reason, detail=decision.detail, duplicate_of=decision.duplicate_of, path=None)
    return [row for row in rows if row["source"] in changed_sources]
