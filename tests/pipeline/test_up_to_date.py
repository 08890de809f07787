"""A stage whose inputs, ledger and options are those of its last finished run does not plan again
(pipeline/up_to_date.py): it reports the recorded counts. Anything the recorded digests cannot vouch
for (a new post, a new method, parts not yet folded, a damaged memo, --redo) plans as before, and a
damaged ledger is still named in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import pipeline.extract.stage as extract_stage
import pipeline.sources as sources
from manifests.ledger import Ledger
from manifests.schema import LINES, PREPARED
from pipeline.cli import main
from pipeline.up_to_date import memo_path
from tests.pipeline.booru_dump import dump_posts, write_dump

PREPARE = ("--min-side", "16", "--size", "16", "--workers", "0")
EXTRACT = ("--device", "cpu", "--workers", "0")


def imported(tmp_path: Path, count: int) -> Path:
    """ROOT with a raw.parquet of `count` dump posts (every tenth kind of trouble included)."""
    dump = tmp_path / "dump"
    metadata = write_dump(dump, dump_posts(count))
    root = tmp_path / "ds"
    assert main(["import", "booru", str(dump), str(root), "--metadata", str(metadata), "--tags", "1girl", "--no-progress"]) == 0
    return root


def prepare(root: Path, *extra: str) -> int:
    return main(["prepare", str(root / "raw.parquet"), str(root), *PREPARE, *extra])


def summary(root: Path, name: str) -> dict:
    return json.loads((root / ".pipe" / "summaries" / f"{name}.json").read_text())


class Planned:
    """Counts the calls of a planning function it stands in for."""

    def __init__(self, monkeypatch, module, name: str) -> None:  # noqa: ANN001
        self.calls, real = 0, getattr(module, name)

        def counted(*args, **kwargs):  # noqa: ANN002, ANN003
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)


def test_a_finished_prepare_is_not_planned_again_until_the_crawl_ledger_changes(tmp_path, monkeypatch):
    root = imported(tmp_path, 30)
    assert prepare(root) == 0
    first = summary(root, "prepared")
    assert first["processed"] > 0 and memo_path(root, "prepared").is_file()
    planned = Planned(monkeypatch, sources, "_from_crawl_ledger")

    assert prepare(root) == 0
    again = summary(root, "prepared")
    assert planned.calls == 0, "nothing changed: the plan was not made"
    assert (again["processed"], again["planned"], again["skipped"]) == (0, first["planned"], first["planned"])
    assert again["total_counts"] == first["total_counts"] and again["new_counts"] == []

    # Ten more posts in the dump: the crawl ledger's digest changes, prepare plans and does only those.
    dump = tmp_path / "dump"
    metadata = write_dump(dump, dump_posts(40))
    assert main(["import", "booru", str(dump), str(root), "--metadata", str(metadata), "--tags", "1girl", "--no-progress"]) == 0
    assert prepare(root) == 0
    grown = summary(root, "prepared")
    assert planned.calls == 1 and 0 < grown["processed"] <= 10
    assert grown["planned"] == first["planned"] + grown["processed"]
    assert prepare(root) == 0 and planned.calls == 1, "finished again: the memo holds for the grown ledger"


@pytest.mark.parametrize("change", ["damaged memo", "unfolded part", "redo"])
def test_what_the_memo_cannot_vouch_for_is_planned(tmp_path, monkeypatch, change):
    root = imported(tmp_path, 20)
    assert prepare(root) == 0
    rows_before = Ledger(root, PREPARED).read().num_rows
    extra: tuple[str, ...] = ()
    if change == "damaged memo":
        memo = memo_path(root, "prepared")
        memo.write_text(memo.read_text().replace('"planned": ', '"planned": 1'))
    elif change == "unfolded part":
        ledger = Ledger(root, PREPARED)
        ledger.append([ledger.read().slice(0, 1).to_pylist()[0]])  # the same row again, in a part
    else:
        extra = ("--redo",)
    planned = Planned(monkeypatch, sources, "_from_crawl_ledger")
    assert prepare(root, *extra) == 0
    assert planned.calls == 1
    assert Ledger(root, PREPARED).read().num_rows == rows_before


def test_a_flipped_bit_in_the_ledger_is_named_even_when_nothing_is_new(tmp_path, capsys):
    root = imported(tmp_path, 20)
    assert prepare(root) == 0
    path = Ledger(root, PREPARED).path
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x10  # inside a row group's pages: the footer and its digest unchanged
    path.write_bytes(bytes(data))
    capsys.readouterr()
    assert prepare(root) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"cannot read ledger {path}: it is damaged" in " ".join(err.split())


def test_a_finished_extract_is_not_planned_again_until_a_method_is_added(tmp_path, monkeypatch):
    root = imported(tmp_path, 20)
    assert prepare(root) == 0
    assert main(["extract", str(root), "--method", "gray,dilate", *EXTRACT]) == 0
    first = summary(root, "lines")
    planned = Planned(monkeypatch, extract_stage, "plan_extract")

    assert main(["extract", str(root), "--method", "gray,dilate", *EXTRACT]) == 0
    assert planned.calls == 0
    again = summary(root, "lines")
    assert (again["processed"], again["planned"], again["total_counts"]) == (0, first["planned"], first["total_counts"])

    assert main(["extract", str(root), "--method", "gray,dilate,canny", *EXTRACT]) == 0
    added = summary(root, "lines")
    assert planned.calls == 1 and added["processed"] == first["planned"] // 2, "only canny's lines were new"
    rows = Ledger(root, LINES).read()
    assert rows.num_rows == first["planned"] // 2 * 3
