"""Parquet files that say when a bit of them has changed: page checksums plus a digest of the whole file.

pyarrow's page checksums (CRC32 of every data and dictionary page) catch a flip in the pages, but not
one in the footer, where a changed column name, row count or offset may still read back as a valid,
different table. So each file also carries, in its key-value metadata, the SHA-256 of its own bytes
taken while that value was 64 zeros: a reader puts the zeros back, hashes, and compares. A flip
anywhere (pages, page headers, dictionary, footer, the digest itself) is then a mismatch, and the
same table still gives the same bytes (the digest is a function of them).

A second key, `pipe.checksummed`, says the file was written this way, so a flip that renames the
digest's key is not mistaken for a file from an older pipe (which has neither key); and a file whose
footer still holds the digest's key but whose parser no longer sees it is damaged too.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

DIGEST_KEY = b"pipe.file_sha256"
MARKER_KEY = b"pipe.checksummed"
MARKER_VALUE = b"crc32-pages,sha256-file"
_PLACEHOLDER = b"0" * 64
_TRAILER = 8  # footer length (4 bytes, little-endian) + "PAR1"


class DigestMismatch(ValueError):
    """The file's bytes are not the ones it was written with."""


@dataclass(frozen=True)
class CheckedTable:
    table: pa.Table
    has_digest: bool  # False: a file written before digests (an older pipe); nothing to compare


def checksummed_parquet(table: pa.Table, compression: str = "zstd") -> bytes:
    """The Parquet bytes of `table`, with page checksums and the file digest filled in."""
    buffer = io.BytesIO()
    with pq.ParquetWriter(buffer, table.schema, compression=compression, write_page_checksum=True) as writer:
        writer.write_table(table)
        writer.add_key_value_metadata({MARKER_KEY: MARKER_VALUE, DIGEST_KEY: _PLACEHOLDER})
    data = bytearray(buffer.getvalue())
    start = _placeholder_offset(bytes(data), _PLACEHOLDER)
    data[start : start + len(_PLACEHOLDER)] = hashlib.sha256(data).hexdigest().encode()
    return bytes(data)


def read_checksummed_parquet(data: bytes, columns: list[str] | None = None) -> CheckedTable:
    """Verify and read Parquet bytes (only `columns`, when given: the digest still covers every byte);
    DigestMismatch (or pyarrow's own error) when they were damaged."""
    metadata = pq.read_metadata(pa.BufferReader(data)).metadata or {}
    digest, marker = metadata.get(DIGEST_KEY), metadata.get(MARKER_KEY)
    if digest is None and marker is None:
        footer_length = int.from_bytes(data[-_TRAILER:-4], "little")
        if DIGEST_KEY in data[-_TRAILER - footer_length :]:  # a flip that hid the key-value metadata from the parser
            raise DigestMismatch("its footer is damaged (its checksum metadata no longer parses)")
        table = pq.read_table(pa.BufferReader(data), columns=columns, page_checksum_verification=True)
        return CheckedTable(table, has_digest=False)
    if digest is None or marker != MARKER_VALUE:
        raise DigestMismatch("its checksum metadata is damaged")
    if len(digest) != len(_PLACEHOLDER):
        raise DigestMismatch("its recorded digest is damaged")
    start = _placeholder_offset(data, digest)
    zeroed = data[:start] + _PLACEHOLDER + data[start + len(digest) :]
    if hashlib.sha256(zeroed).hexdigest().encode() != digest:
        raise DigestMismatch("its content does not match the digest it was written with")
    table = pq.read_table(pa.BufferReader(data), columns=columns, page_checksum_verification=True)
    return CheckedTable(table, has_digest=True)


def _placeholder_offset(data: bytes, value: bytes) -> int:
    """Where `value` (the digest or its placeholder) lies: right after the digest's key, in the footer's
    key-value metadata (which follows the row groups, so column statistics cannot be mistaken for it)."""
    footer_length = int.from_bytes(data[-_TRAILER:-4], "little")
    footer_start = max(0, len(data) - _TRAILER - footer_length)
    key = data.rfind(DIGEST_KEY, footer_start)
    start = data.find(value, key + len(DIGEST_KEY)) if key >= 0 else -1
    # Thrift puts a field header and a length (at most 6 bytes) between a key and its value.
    if start < 0 or start - (key + len(DIGEST_KEY)) > 6:
        raise DigestMismatch("its recorded digest cannot be located in its footer")
    return start
