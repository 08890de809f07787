"""One flipped bit in any file pipe writes is caught: `pipe verify` exits 1 with a line naming the file.

The dataset is built once for the module by a small job (prepare, extract, shard, a 2-step training and
an eval), then for each kind of file 20 seeded random bits are flipped, one at a time, each in a fresh
copy of the file (the original bytes are put back before the next flip).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.helpers import picture, save_rgb

FLIPS = 20
JOB = """
dataset = "dataset"
seed = 1
[prepare]
source = "src"
workers = 0
min-side = 64
size = 64
[extract]
method = "xdog"
device = "cpu"
workers = 0
[shard]
hints = "points"
artifacts = "none"
val = 0.34
shard-samples = 3
workers = 0
[train.draft]
recipe = "xu2020"
steps = 2
size = 64
width = 0.125
batch-size = 2
content-loss = false
device = "cpu"
workers = 0
[eval]
hints = "none"
device = "cpu"
workers = 0
"""

# Each kind of file pipe writes, and the name a report of its damage must carry.
KINDS = {
    "ledger": ("prepared.parquet", "prepared.parquet"),
    "options": (".pipe/options/prepared.json", "prepared.json"),
    "shard tar": ("shards/train/00000.tar", "train/00000"),
    "sidecar": ("shards/train/00000.parquet", "train/00000"),
    "stats": ("shards/train/00000_stats.json", "train/00000"),
    "checkpoint": ("runs/xu2020-draft/checkpoints/last.pt", "last.pt"),
    "job state": (".pipe/jobs/train.draft.json", "train.draft.json"),
    "report": ("reports/*/report.json", "report.json"),
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bitflips")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("PIPE_WEIGHTS", str(folder / "no-weights"))
    for seed in range(6):
        save_rgb(folder / "src" / f"{seed}.png", picture(seed, 96, 96))
    (folder / "job.toml").write_text(JOB)
    try:
        assert main(["run", str(folder / "job.toml")]) == 0
    finally:
        monkeypatch.undo()
    return folder / "dataset"


def test_the_built_dataset_verifies_clean(dataset, capsys):
    assert main(["verify", str(dataset)]) == 0
    out = capsys.readouterr().err
    assert "damaged:" not in out and "checkpoints" in out and "shards" in out


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_flipped_bit_is_caught_by_verify_in_one_line_naming_the_file(dataset, capsys, kind):
    pattern, name = KINDS[kind]
    (path,) = dataset.glob(pattern)
    original = path.read_bytes()
    draw = random.Random(f"bitflips-{kind}")
    missed = []
    try:
        for _ in range(FLIPS):
            byte, bit = draw.randrange(len(original)), draw.randrange(8)
            flipped = bytearray(original)
            flipped[byte] ^= 1 << bit
            path.write_bytes(bytes(flipped))
            code = main(["verify", str(dataset)])
            damaged = [line for line in capsys.readouterr().err.splitlines() if line.startswith("damaged:")]
            if code != 1 or not any(name in line for line in damaged):
                missed.append((byte, bit))
            path.write_bytes(original)
    finally:
        path.write_bytes(original)
    assert missed == [], f"{kind}: {len(missed)} of {FLIPS} flips (byte, bit) not caught: {missed}"
