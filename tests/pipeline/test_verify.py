"""`pipe verify ROOT`: raw originals rehashed, outputs checked for existence, older ledgers noted, exit codes."""

from __future__ import annotations

import hashlib

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import PREPARED, RAW
from pipeline.cli import main


def _raw_dataset(root, contents):
    layout, rows = DatasetLayout(root), []
    for index, data in enumerate(contents):
        key = hashlib.sha256(data).hexdigest()
        path = layout.sample("raw", key, "png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append({"post": f"test:{index}", "key": key, "status": "ok", "path": layout.relative(path)})
    Ledger(root, RAW).append(rows)
    Ledger(root, RAW).compact()
    return [root / row["path"] for row in rows]


def _lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_a_raw_original_that_no_longer_hashes_to_its_key_is_damaged(tmp_path, capsys):
    paths = _raw_dataset(tmp_path, [b"first image", b"second image"])
    assert main(["verify", str(tmp_path)]) == 0
    assert not [line for line in _lines(capsys) if line.startswith("damaged:")]
    paths[1].write_bytes(b"second imagE")
    assert main(["verify", str(tmp_path)]) == 1
    damaged = [line for line in _lines(capsys) if line.startswith("damaged:")]
    assert damaged == [f"damaged: {paths[1]}: damaged (its SHA-256 is not its key)"]


def test_a_missing_output_and_an_older_ledger_are_told_apart(tmp_path, capsys):
    table = pa.Table.from_pylist([{"source": "a.png", "key": "k" * 64, "status": "ok", "path": "prepared/kk/" + "k" * 64 + ".png"}], schema=PREPARED.arrow)
    pq.write_table(table, tmp_path / "prepared.parquet")  # as a pipe before digests wrote it
    assert main(["verify", str(tmp_path)]) == 1
    out = _lines(capsys)
    assert f"damaged: {tmp_path / 'prepared' / 'kk' / ('k' * 64 + '.png')}: missing (its ledger row is ok)" in out
    assert any("1 ledger file(s) have no digest (written by an older pipe)" in line for line in out)


def test_a_bad_root_is_one_line_and_help_says_what_is_checked(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "absent")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["verify", str(tmp_path / "file")]) == 2
    assert "is a file, not a dataset folder" in capsys.readouterr().err
    assert main(["verify", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "rehashed" in text and "damaged: PATH: why" in text and "--redo" in text
