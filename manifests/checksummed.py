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
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DIGEST_KEY = b"pipe.file_sha256"
MARKER_KEY = b"pipe.checksummed"
MARKER_VALUE = b"crc32-pages,sha256-file"
_PLACEHOLDER = b"0" * 64
_TRAILER = 8  # footer length (4 bytes, little-endian) + "PAR1"
# Rows per row group. Every writer cuts its rows into groups of exactly this many (the last one less),
# each from one contiguous chunk, so a file's bytes depend on its rows, not on how they were streamed in.
ROW_GROUP_ROWS = 65_536
_HASH_BLOCK = 1 << 20


class DigestMismatch(ValueError):
    """The file's bytes are not the ones it was written with."""


@dataclass(frozen=True)
class CheckedTable:
    table: pa.Table
    has_digest: bool  # False: a file written before digests (an older pipe); nothing to compare


def checksummed_parquet(table: pa.Table, compression: str = "zstd") -> bytes:
    """The Parquet bytes of `table`, with page checksums and the file digest filled in."""
    buffer = io.BytesIO()
    _write_groups(buffer, table.schema, [table], compression)
    data = bytearray(buffer.getvalue())
    start = _placeholder_offset(bytes(data), _PLACEHOLDER)
    data[start : start + len(_PLACEHOLDER)] = hashlib.sha256(data).hexdigest().encode()
    return bytes(data)


def write_checksummed_parquet(path: Path, schema: pa.Schema, tables: Iterable[pa.Table], compression: str = "zstd") -> int:
    """Stream `tables` (in order) into a checksummed Parquet file at `path`; returns the rows written.

    Memory stays at one row group and one input table: the digest is taken by reading the written file
    back in blocks and written into its placeholder in place. The bytes equal `checksummed_parquet` of
    the same rows."""
    with open(path, "wb") as handle:
        rows = _write_groups(handle, schema, tables, compression)
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        span = min(size, _footer_tail(handle, size))
        handle.seek(size - span)
        start = size - span + _placeholder_offset(handle.read(span), _PLACEHOLDER)
        digest = _file_sha256(handle)
        os.pwrite(handle.fileno(), digest.encode(), start)
    return rows


def _write_groups(sink, schema: pa.Schema, tables: Iterable[pa.Table], compression: str) -> int:  # noqa: ANN001 - a binary file
    pending: list[pa.Table] = []
    held = written = 0
    with pq.ParquetWriter(sink, schema, compression=compression, write_page_checksum=True) as writer:
        for table in tables:
            pending.append(table)
            held += table.num_rows
            while held >= ROW_GROUP_ROWS:
                joined = pa.concat_tables(pending)
                writer.write_table(joined.slice(0, ROW_GROUP_ROWS).combine_chunks(), row_group_size=ROW_GROUP_ROWS)
                pending, held = [joined.slice(ROW_GROUP_ROWS)], held - ROW_GROUP_ROWS
                written += ROW_GROUP_ROWS
        if held or not written:
            writer.write_table(pa.concat_tables(pending).combine_chunks() if pending else schema.empty_table(), row_group_size=ROW_GROUP_ROWS)
            written += held
        writer.add_key_value_metadata({MARKER_KEY: MARKER_VALUE, DIGEST_KEY: _PLACEHOLDER})
    return written


def verify_checksummed_file(path: Path) -> bool:
    """Check a file's digest by reading it in blocks (its table is not loaded): True when it has one,
    False for a file from before digests; DigestMismatch (or pyarrow's error) when it was damaged."""
    with open(path, "rb") as handle:
        return _verify_open_file(handle)


def read_checksummed_file(path: Path, columns: list[str] | None = None) -> CheckedTable:
    """Verify and read a checksummed Parquet file (only `columns`, when given); see `read_checksummed_handle`."""
    with open(path, "rb") as handle:
        return read_checksummed_handle(handle, columns)


def read_checksummed_handle(handle, columns: list[str] | None = None) -> CheckedTable:  # noqa: ANN001 - a binary file
    """Verify and read an open checksummed Parquet file (only `columns`, when given), holding neither
    its bytes nor a copy of them: the digest is taken in blocks, then pyarrow reads the columns it needs
    from the same file. A file already verified in this command (same inode, size and times) is not
    hashed again. DigestMismatch (or pyarrow's error) when it was damaged."""
    has_digest = _verified_once(handle)
    handle.seek(0)
    return CheckedTable(pq.read_table(handle, columns=columns, page_checksum_verification=True), has_digest)


def verified_digest(path: Path) -> str | None:
    """The digest a file records, after checking its bytes against it (once per command, as
    `read_checksummed_handle` does); None for a file from before digests. DigestMismatch (or
    pyarrow's error) when it was damaged."""
    with open(path, "rb") as handle:
        if not _verified_once(handle):
            return None
        handle.seek(0)
        return pq.read_metadata(handle).metadata[DIGEST_KEY].decode("ascii")


def _verified_once(handle) -> bool:  # noqa: ANN001 - a binary file
    status = os.fstat(handle.fileno())
    identity = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    has_digest = _VERIFIED.get(identity)
    if has_digest is None:
        has_digest = _verify_open_file(handle)
        # File times tick coarsely (a few ms): a file changed in place within a tick of its last change
        # could keep its times, so only a file settled for a while is remembered.
        if time.time_ns() - max(status.st_mtime_ns, status.st_ctime_ns) > _SETTLED_NS:
            if len(_VERIFIED) >= _VERIFIED_MAX:
                _VERIFIED.clear()
            _VERIFIED[identity] = has_digest
    return has_digest


def forget_verified_files() -> None:
    """Hash every file again on its next read (each command starts so: a file verified in an earlier
    command of the same process is verified again)."""
    _VERIFIED.clear()


# Files this command verified: (device, inode, size, mtime, ctime) -> whether the file has a digest. A
# ledger is replaced by a rename, never rewritten in place, so a changed ledger is a new identity.
_VERIFIED: dict[tuple[int, ...], bool] = {}
_VERIFIED_MAX = 256
_SETTLED_NS = 2_000_000_000


def _verify_open_file(handle) -> bool:  # noqa: ANN001 - a binary file
    size = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    metadata = pq.read_metadata(handle).metadata or {}
    span = min(size, _footer_tail(handle, size))
    handle.seek(size - span)
    tail = handle.read(span)
    digest = _recorded_digest(metadata, tail)
    if digest is None:
        return False
    start = size - span + _placeholder_offset(tail, digest)
    if _file_sha256(handle, (start, _PLACEHOLDER)).encode() != digest:
        raise DigestMismatch("its content does not match the digest it was written with")
    return True


def _recorded_digest(metadata: dict, footer: bytes) -> bytes | None:
    """The digest the file's key-value metadata records; None for a file written before digests
    (neither key, and none hidden in `footer`, the file's last bytes); DigestMismatch when damaged."""
    digest, marker = metadata.get(DIGEST_KEY), metadata.get(MARKER_KEY)
    if digest is None and marker is None:
        if DIGEST_KEY in footer:  # a flip that hid the key-value metadata from the parser
            raise DigestMismatch("its footer is damaged (its checksum metadata no longer parses)")
        return None
    if digest is None or marker != MARKER_VALUE:
        raise DigestMismatch("its checksum metadata is damaged")
    if len(digest) != len(_PLACEHOLDER):
        raise DigestMismatch("its recorded digest is damaged")
    return digest


def _file_sha256(handle, replace: tuple[int, bytes] | None = None) -> str:  # noqa: ANN001 - a binary file
    """SHA-256 of the whole file read in blocks, with `replace`'s bytes in place of those at its offset."""
    hasher = hashlib.sha256()
    handle.seek(0)
    if replace is not None:
        start, value = replace
        _hash_until(handle, hasher, start)
        hasher.update(value)
        handle.seek(start + len(value))
    _hash_until(handle, hasher, None)
    return hasher.hexdigest()


def _hash_until(handle, hasher, end: int | None) -> None:  # noqa: ANN001 - a binary file and a hash
    while end is None or handle.tell() < end:
        block = handle.read(_HASH_BLOCK if end is None else min(_HASH_BLOCK, end - handle.tell()))
        if not block:
            return
        hasher.update(block)


def _footer_tail(handle, size: int) -> int:  # noqa: ANN001 - a binary file
    """How many bytes at the file's end hold its footer and trailer."""
    handle.seek(max(0, size - _TRAILER))
    trailer = handle.read(_TRAILER)
    return _TRAILER + int.from_bytes(trailer[:4], "little")


def read_checksummed_parquet(data: bytes, columns: list[str] | None = None) -> CheckedTable:
    """Verify and read Parquet bytes (only `columns`, when given: the digest still covers every byte);
    DigestMismatch (or pyarrow's own error) when they were damaged."""
    metadata = pq.read_metadata(pa.BufferReader(data)).metadata or {}
    footer_length = int.from_bytes(data[-_TRAILER:-4], "little")
    digest = _recorded_digest(metadata, data[-_TRAILER - footer_length :])
    if digest is None:
        table = pq.read_table(pa.BufferReader(data), columns=columns, page_checksum_verification=True)
        return CheckedTable(table, has_digest=False)
    start, view = _placeholder_offset(data, digest), memoryview(data)
    hasher = hashlib.sha256(view[:start])  # the bytes with the placeholder back in, without a copy of them
    hasher.update(_PLACEHOLDER)
    hasher.update(view[start + len(digest) :])
    if hasher.hexdigest().encode() != digest:
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
