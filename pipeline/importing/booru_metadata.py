"""A board dump's post metadata, read in batches: JSON lines, Parquet, or a JSON array.

Records are in the Danbooru API's schema (`id`, `md5`, `file_ext`, `image_width`, `image_height`,
`file_size`, `rating`, `tag_string`, `tag_string_artist`, `tag_string_character`, `source`). The
Danbooru2017-2019 releases give `tags` as a list of `{name, category}` objects instead of the
`tag_string*` fields; `danbooru_record` turns them into the current fields.

JSON lines are read a line at a time and Parquet a record batch at a time (pyarrow), so a dump of
millions of posts is read in bounded memory. JSON lines are parsed with the standard library rather
than pyarrow's reader because older dumps mix types between rows (`"id": "123"` next to `123`), which
pyarrow's per-block type inference refuses. A JSON array is read whole (the standard library has no
streaming parser): use JSON lines or Parquet for large dumps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BATCH_ROWS = 4096
# Danbooru's tag categories, in the 2017-2019 dumps' `tags` lists.
_ARTIST_CATEGORY, _CHARACTER_CATEGORY = "1", "4"


class MetadataError(ValueError):
    """The metadata file cannot be read as posts (one line for the user)."""


def metadata_format(path: Path) -> str:
    """parquet, jsonl or json: by the file's suffix, else by its first bytes."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    raise MetadataError(f"{path} is not post metadata: expected a JSON array, JSON lines or Parquet")


def record_batches(path: Path, batch_rows: int = BATCH_ROWS) -> Iterator[list[dict]]:
    """The file's records, `batch_rows` at a time, each normalized by `danbooru_record`."""
    if not path.is_file():
        raise MetadataError(f"metadata file not found: {path}")
    kind = metadata_format(path)
    reader = {"parquet": _parquet_batches, "jsonl": _jsonl_batches, "json": _json_array_batches}[kind]
    for batch in reader(path, batch_rows):
        yield [danbooru_record(record) for record in batch]


def _parquet_batches(path: Path, batch_rows: int) -> Iterator[list[dict]]:
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=batch_rows):
            yield batch.to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise MetadataError(f"{path} is not readable Parquet: {exc}") from None


def _jsonl_batches(path: Path, batch_rows: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise MetadataError(f"{path} line {number} is not JSON: {exc}") from None
            if not isinstance(record, dict):
                raise MetadataError(f"{path} line {number} is not a post object (a {type(record).__name__})")
            batch.append(record)
            if len(batch) >= batch_rows:
                yield batch
                batch = []
    if batch:
        yield batch


def _json_array_batches(path: Path, batch_rows: int) -> Iterator[list[dict]]:
    try:
        payload = json.loads(path.read_bytes())
    except ValueError as exc:
        raise MetadataError(f"{path} is not JSON: {exc}") from None
    if not isinstance(payload, list) or not all(isinstance(record, dict) for record in payload):
        raise MetadataError(f"{path} is not a JSON array of post objects")
    for start in range(0, len(payload), batch_rows):
        yield payload[start : start + batch_rows]


def danbooru_record(record: dict) -> dict:
    """The record with `tag_string*` fields, derived from a 2017-2019 dump's `tags` list if needed."""
    tags = record.get("tags")
    if "tag_string" in record or not isinstance(tags, list):
        return record
    names = lambda category=None: " ".join(  # noqa: E731 - three uses, one line each
        str(tag.get("name")) for tag in tags if isinstance(tag, dict) and (category is None or str(tag.get("category")) == category)
    )
    return {**record, "tag_string": names(), "tag_string_artist": names(_ARTIST_CATEGORY), "tag_string_character": names(_CHARACTER_CATEGORY)}
