"""Ledger files carry page checksums and a digest of their bytes: any flipped bit is a LedgerError."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.checksummed import DIGEST_KEY, MARKER_KEY
from manifests.ledger import Ledger, LedgerError, check_ledger_file
from manifests.schema import PREPARED


def _prepared(root, count=12):
    ledger = Ledger(root, PREPARED)
    ledger.append([{"source": f"in/{i:02d}.png", "key": f"{i:02d}" * 32, "status": "ok", "width": 512, "height": 512,
                    "path": f"prepared/{i:02d}/{i:02d}.png", "phash": "f" * 16} for i in range(count)])
    ledger.compact()
    return ledger


def _flipped(data: bytes, byte: int, bit: int) -> bytes:
    out = bytearray(data)
    out[byte] ^= 1 << bit
    return bytes(out)


def test_a_flip_of_any_byte_of_a_ledger_is_caught_with_the_file_and_the_way_back(tmp_path):
    ledger = _prepared(tmp_path)
    good = ledger.path.read_bytes()
    assert {DIGEST_KEY, MARKER_KEY} <= set(pq.read_metadata(ledger.path).metadata)
    missed = []
    for byte in range(len(good)):  # every byte: pages, page headers, dictionary, footer, trailer
        ledger.path.write_bytes(_flipped(good, byte, byte % 8))
        try:
            ledger.read()
        except LedgerError as exc:
            message = str(exc)
            assert str(ledger.path) in message and "--redo" in message and "\n" not in message
        else:
            missed.append(byte)
    assert missed == []


def test_a_flip_in_the_key_column_of_prepared_is_no_phantom_key(tmp_path):
    ledger = _prepared(tmp_path)
    data = ledger.path.read_bytes()
    chunk = pq.read_metadata(ledger.path).row_group(0).column(0)  # the `key` column's pages
    assert chunk.path_in_schema == "key"
    last_page_byte = chunk.data_page_offset + chunk.total_compressed_size - 2
    ledger.path.write_bytes(_flipped(data, last_page_byte, 0))
    with pytest.raises(LedgerError, match=r"prepared\.parquet: it is damaged.*pipe prepare"):
        ledger.read()


def test_a_damaged_part_file_is_caught_too(tmp_path):
    ledger = Ledger(tmp_path, PREPARED)
    ledger.append([{"source": "a", "key": "a" * 64, "status": "ok"}])
    part = ledger.pending_parts()[0]
    data = part.read_bytes()
    part.write_bytes(_flipped(data, len(data) // 2, 3))
    with pytest.raises(LedgerError, match="part-00000001.parquet: it is damaged"):
        ledger.read()


def test_a_ledger_written_by_an_older_pipe_still_reads_and_says_it_has_no_digest(tmp_path):
    table = pa.Table.from_pylist([{"source": "a", "key": "k", "status": "ok"}], schema=PREPARED.arrow)
    pq.write_table(table, tmp_path / "prepared.parquet", compression="zstd")  # how pipe wrote ledgers before digests
    ledger = Ledger(tmp_path, PREPARED)
    assert ledger.read().column("key").to_pylist() == ["k"]
    assert check_ledger_file(ledger.path, "prepared").has_digest is False
    ledger.append([{"source": "b", "key": "k2", "status": "ok"}])
    ledger.compact()  # rewriting gives it a digest
    assert check_ledger_file(ledger.path, "prepared").has_digest is True


def test_the_same_content_gives_the_same_bytes(tmp_path):
    first, second = _prepared(tmp_path / "a"), _prepared(tmp_path / "b")
    assert first.path.read_bytes() == second.path.read_bytes()


def test_a_streamed_read_hashes_a_settled_file_once_per_command_and_catches_a_flip_after(tmp_path, monkeypatch):
    """`read_checksummed_file` gives the table `read_checksummed_parquet` gives, hashes a file (in blocks)
    once while it stays the same inode, size and times, and hashes it again in the next command."""
    from manifests import checksummed

    ledger = _prepared(tmp_path, count=40)
    monkeypatch.setattr(checksummed, "_SETTLED_NS", -(10**18))  # as a ledger written a minute ago (ctime cannot be set back)
    hashed = []
    real = checksummed._verify_open_file
    monkeypatch.setattr(checksummed, "_verify_open_file", lambda handle: hashed.append(1) or real(handle))
    checksummed.forget_verified_files()
    whole = checksummed.read_checksummed_parquet(ledger.path.read_bytes()).table
    streamed = checksummed.read_checksummed_file(ledger.path)
    assert streamed.has_digest and streamed.table.equals(whole)
    assert checksummed.read_checksummed_file(ledger.path, columns=["key", "status"]).table.equals(whole.select(["key", "status"]))
    assert len(hashed) == 1, "the second read of the unchanged file is not hashed again"

    # Changed in place, maybe within one tick of the file's clock (as bit rot would: same inode and size).
    data = bytearray(ledger.path.read_bytes())
    data[len(data) // 3] ^= 0x04
    with open(ledger.path, "r+b") as handle:
        handle.write(bytes(data))
    checksummed.forget_verified_files()  # what each command starts with
    with pytest.raises(LedgerError, match="damaged"):
        ledger.read()
    assert len(hashed) == 2


def test_a_file_changed_in_place_just_now_is_hashed_on_every_read(tmp_path, monkeypatch):
    from manifests import checksummed

    ledger = _prepared(tmp_path, count=40)  # written just now: not settled
    checksummed.forget_verified_files()
    hashed = []
    real = checksummed._verify_open_file
    monkeypatch.setattr(checksummed, "_verify_open_file", lambda handle: hashed.append(1) or real(handle))
    ledger.read()
    data = bytearray(ledger.path.read_bytes())
    data[len(data) // 3] ^= 0x04
    with open(ledger.path, "r+b") as handle:  # within the same tick of the file's clock, maybe
        handle.write(bytes(data))
    with pytest.raises(LedgerError, match="damaged"):
        ledger.read()
    assert len(hashed) == 2
