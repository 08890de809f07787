"""Parquet schemas of the stage ledgers.

Every ledger shares the core columns (`key`, `status`, `reason`, `detail`) and adds its own. A ledger
file records the stage name and the schema version in its Parquet metadata, so a reader can refuse a
file written by a newer, incompatible version of pipe instead of misreading it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from manifests.statuses import STATUS_FAILED, STATUS_OK, STATUS_REJECTED, STATUSES

SCHEMA_VERSION = 1
__all__ = ["STATUS_FAILED", "STATUS_OK", "STATUS_REJECTED", "STATUSES"]  # re-exported: where the schemas are

CORE_FIELDS = [
    pa.field("key", pa.string(), nullable=False),
    pa.field("status", pa.string(), nullable=False),
    # A short stable code (`too_small`, `decode_error`, ...); null for ok rows.
    pa.field("reason", pa.string()),
    # Human-readable explanation: the exception message, the measured value against its threshold.
    pa.field("detail", pa.string()),
]


@dataclass(frozen=True)
class LedgerSchema:
    """One stage's ledger: its file name, columns, and the column that identifies one unit of input.

    `id_column` is what resume and merge work on: a stage skips inputs whose id is already in its
    ledger, and a newer write for an id replaces every older row with that id (an input may own
    several rows, e.g. one per face crop).
    """

    stage: str
    id_column: str
    fields: tuple[pa.Field, ...]

    @property
    def file_name(self) -> str:
        return f"{self.stage}.parquet"

    @property
    def arrow(self) -> pa.Schema:
        metadata = {b"pipe.stage": self.stage.encode(), b"pipe.schema_version": str(SCHEMA_VERSION).encode()}
        return pa.schema([*CORE_FIELDS, *self.fields], metadata=metadata)


RAW = LedgerSchema(
    stage="raw",
    id_column="post",
    fields=(
        # `site:post_id`, e.g. `danbooru:4507123`: one row per post the API listed, downloaded or not.
        pa.field("post", pa.string(), nullable=False),
        pa.field("site", pa.string()),
        pa.field("post_id", pa.int64()),
        # The tags asked for when the post was first listed (what --limit counts against).
        pa.field("query", pa.string()),
        # What the API declared.
        pa.field("file_url", pa.string()),
        pa.field("md5", pa.string()),
        pa.field("file_ext", pa.string()),
        pa.field("file_size", pa.int64()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        # g/s/q/e as Danbooru writes them today (other boards' "safe" is g).
        pa.field("rating", pa.string()),
        pa.field("tags", pa.string()),
        pa.field("artist", pa.string()),
        pa.field("characters", pa.string()),
        # Where the artwork comes from, as the board records it (often the artist's page).
        pa.field("source", pa.string()),
        # The downloaded original, relative to the dataset root: raw/ab/<sha256>.<ext>. `key` is its
        # sha256, so it equals the key `pipe prepare` gives the same bytes.
        pa.field("path", pa.string()),
        pa.field("bytes", pa.int64()),
        # For `duplicate` rows (no path of their own): the post whose download holds the same content
        # (empty: a file kept from an interrupted run).
        pa.field("duplicate_of", pa.string()),
    ),
)

PREPARED = LedgerSchema(
    stage="prepared",
    id_column="source",
    fields=(
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_bytes", pa.int64()),
        pa.field("format", pa.string()),
        pa.field("frames", pa.int32()),
        # Size after EXIF orientation, before any crop.
        pa.field("orig_width", pa.int32()),
        pa.field("orig_height", pa.int32()),
        # Crop box in original (oriented) pixel coordinates; for --crop pad it covers the whole image.
        pa.field("crop_x", pa.int32()),
        pa.field("crop_y", pa.int32()),
        pa.field("crop_w", pa.int32()),
        pa.field("crop_h", pa.int32()),
        pa.field("faces_found", pa.int32()),
        pa.field("face_index", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        # The written image, relative to the dataset root: prepared/ab/<key>.png.
        pa.field("path", pa.string()),
        # 64-bit DCT perceptual hash as 16 hex digits.
        pa.field("phash", pa.string()),
        pa.field("colorfulness", pa.float32()),
        pa.field("color_fraction", pa.float32()),
        pa.field("brightness", pa.float32()),
        pa.field("duplicate_of", pa.string()),
        # True once the row went through duplicate detection; rows of an interrupted run are False.
        pa.field("dedupe_settled", pa.bool_()),
    ),
)

LINES = LedgerSchema(
    stage="lines",
    id_column="line",
    fields=(
        # `<method>/<key>`: one row per prepared image and extraction method.
        pa.field("line", pa.string(), nullable=False),
        pa.field("method", pa.string()),
        # JSON of every value that decided this output: the method's options (the drawn ones as
        # drawn), the post-processing (size, equalize, binarize). Re-running the method with these
        # values on the same image gives the same file.
        pa.field("params", pa.string()),
        # The global seed the per-sample draws came from (with the method and the key).
        pa.field("seed", pa.int64()),
        # The prepared image read, and the written line art (lines/<method>/ab/<key>.png).
        pa.field("source_path", pa.string()),
        pa.field("path", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        # Share of pixels darker than mid-grey: 0 flags an empty drawing, 1 an inverted one.
        pa.field("ink_fraction", pa.float32()),
        pa.field("device", pa.string()),
    ),
)

# What `pipe shard` made of each prepared image: the split and shard it went into, or why none.
SHARDS = LedgerSchema(
    stage="shards",
    id_column="key",
    fields=(
        pa.field("split", pa.string()),
        # `train/00003`: the shard holding the sample (ok rows only).
        pa.field("shard", pa.string()),
        # The line art it got (`xdog`, ..., or `gray`), the hint scheme (`none` for the hint-free
        # share) and the artifacts applied to its draft (comma-separated, empty when off).
        pa.field("line_source", pa.string()),
        pa.field("hint", pa.string()),
        pa.field("artifacts", pa.string()),
        pa.field("seed", pa.int64()),
        # Bytes of the sample's members in the tar.
        pa.field("bytes", pa.int64()),
    ),
)

# Every ledger pipe knows, in pipeline order: `pipe status` reports them in this order.
LEDGERS: tuple[LedgerSchema, ...] = (RAW, PREPARED, LINES, SHARDS)

# The Parquet sidecar beside each shard (shards/<split>/NNNNN.parquet): one row per sample, in tar
# order, with enough about each member for `pipe shard --verify` to check the tar byte for byte.
SHARD_SIDECAR = pa.schema(
    [
        pa.field("key", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("shard", pa.string()),
        pa.field("source_path", pa.string()),
        pa.field("line_source", pa.string()),
        pa.field("hint", pa.string()),
        pa.field("artifacts", pa.string()),
        pa.field("seed", pa.int64()),
        # Member extensions (`color.png`, `line.png`, ...) with their sizes and SHA-256 digests.
        pa.field("members", pa.list_(pa.string())),
        pa.field("member_bytes", pa.list_(pa.int64())),
        pa.field("member_sha256", pa.list_(pa.string())),
    ],
    metadata={b"pipe.stage": b"shard_sidecar", b"pipe.schema_version": str(SCHEMA_VERSION).encode()},
)


def by_stage(stage: str) -> LedgerSchema:
    for schema in LEDGERS:
        if schema.stage == stage:
            return schema
    raise KeyError(f"unknown ledger {stage!r}; known: {', '.join(s.stage for s in LEDGERS)}")

# What `pipe import pairs` made of each pair of an existing paired dataset (a colour image and its
# line drawing). It is the import's own, resumable ledger: every settled row is also published as
# one row of prepared.parquet (`source` = `pair`) and, for ok pairs, a `real/<key>` row of
# lines.parquet, so later stages see an imported pair as a prepared image with the line method `real`.
IMPORTS = LedgerSchema(
    stage="imports",
    id_column="pair",
    fields=(
        # The side-by-side file, or the colour file (the sketch file when the colour is missing).
        pa.field("pair", pa.string(), nullable=False),
        pa.field("layout", pa.string()),
        # `train` / `val` when the source keeps a split (its train/ and val/ folders); null: pipe shard hashes the key.
        pa.field("split", pa.string()),
        pa.field("color_source", pa.string()),
        pa.field("sketch_source", pa.string()),
        # Bytes of the colour file (side-by-side: of the pair's file, which the key hashes too) and of the sketch file.
        pa.field("source_bytes", pa.int64()),
        pa.field("sketch_bytes", pa.int64()),
        pa.field("format", pa.string()),
        pa.field("frames", pa.int32()),
        # The colour half after EXIF orientation, before any crop; the sketch half likewise.
        pa.field("orig_width", pa.int32()),
        pa.field("orig_height", pa.int32()),
        pa.field("sketch_width", pa.int32()),
        pa.field("sketch_height", pa.int32()),
        # One crop box for both halves, in the halves' pixels.
        pa.field("crop_x", pa.int32()),
        pa.field("crop_y", pa.int32()),
        pa.field("crop_w", pa.int32()),
        pa.field("crop_h", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        # The written colour (prepared/ab/<key>.png) and line art (lines/real/ab/<key>.png).
        pa.field("path", pa.string()),
        pa.field("line_path", pa.string()),
        pa.field("phash", pa.string()),
        pa.field("colorfulness", pa.float32()),
        pa.field("color_fraction", pa.float32()),
        pa.field("brightness", pa.float32()),
        # Share of the sketch's pixels with chroma above the threshold (a sketch must be grey).
        pa.field("sketch_color_fraction", pa.float32()),
        # Share of the written line art's pixels darker than mid-grey.
        pa.field("ink_fraction", pa.float32()),
        # For `duplicate` rows: the kept pair with the same colour bytes.
        pa.field("duplicate_of", pa.string()),
        # True once the row is final (ok rows: after duplicate detection); only settled rows are published.
        pa.field("dedupe_settled", pa.bool_()),
    ),
)
