"""Options records carry a digest: a flipped bit that leaves valid JSON is caught when the record is read."""

from __future__ import annotations

import json

import pytest

from pipeline.cli import main
from pipeline.recorded_options import DamagedRecord, options_json, parse_digested_json
from tests.helpers import picture, save_rgb


def test_an_options_record_whose_value_changed_by_one_bit_is_refused_in_one_line(tmp_path, capsys):
    src, root = tmp_path / "src", tmp_path / "root"
    save_rgb(src / "0.png", picture(0, 600, 600))
    assert main(["prepare", str(src), str(root), "--workers", "0"]) == 0
    record = root / ".pipe" / "options" / "prepared.json"
    text = record.read_text()
    assert '"--min-side": 512' in text and '"_digest": "sha256:' in text
    record.write_text(text.replace('"--min-side": 512', '"--min-side": 513'))  # '2' -> '3' is one bit: still valid JSON
    capsys.readouterr()
    assert main(["prepare", str(src), str(root), "--workers", "0", "--min-side", "513"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{record} is damaged" in " ".join(err.split()) and "--redo" in err


def test_a_record_without_a_digest_is_read_as_an_older_pipe_wrote_it():
    assert parse_digested_json('{"--min-side": 512}') == ({"--min-side": 512}, False)
    values, checked = parse_digested_json(options_json({"--min-side": 512}))
    assert values == {"--min-side": 512} and checked is True
    with pytest.raises(DamagedRecord, match="does not match"):
        parse_digested_json(options_json({"--min-side": 512}).replace("512", "513"))
    with pytest.raises(DamagedRecord, match="not valid JSON"):
        parse_digested_json(options_json({"--min-side": 512})[:-5])
    assert json.loads(options_json({"a": 1, "_digest": "old"}))["_digest"] == json.loads(options_json({"a": 1}))["_digest"]


def test_a_flip_that_renames_the_digest_field_is_not_taken_for_an_older_record():
    text = options_json({"--min-side": 512})
    for flipped in ("_digesu", "Odigest", "_dig%st"):
        with pytest.raises(DamagedRecord, match="_digest field is damaged"):
            parse_digested_json(text.replace('"_digest"', f'"{flipped}"'))
