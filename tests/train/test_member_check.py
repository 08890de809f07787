"""Shard members are checked against their sidecar's digests when the training loader or eval reads them:
a member whose bytes changed but still decode (to wrong pixels) never reaches a batch or a score."""

from __future__ import annotations

import io
import logging
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from manifests.reasons import DECODE_ERROR
from pipeline.cli import main
from pipeline.eval.samples import eval_loader, sample_positions
from tests.helpers import make_prepared_dataset
from train.loader import LoaderConfig, make_loader

COUNT = 12


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("members") / "root"
    make_prepared_dataset(root, COUNT, size=48)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--hints", "points", "--val", "0", "--shard-samples", "4", "--workers", "0"]) == 0
    return root / "shards" / "train"


def tamper_colour(tar_path: Path, index: int) -> str:
    """Re-encode sample `index`'s colour PNG with one pixel changed (it still decodes, to other pixels); its key."""
    with tarfile.open(tar_path) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar]
    colours = [n for n, (info, _) in enumerate(members) if info.name.endswith(".color.png")]
    info, data = members[colours[index]]
    key = info.name.split(".")[0]
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    image[0, 0] ^= 0x10
    members[colours[index]] = (info, cv2.imencode(".png", image)[1].tobytes())
    with tarfile.open(tar_path, "w") as tar:
        for header, payload in members:
            header.size = len(payload)
            tar.addfile(header, io.BytesIO(payload))
    return key


@pytest.fixture
def damaged(shards, tmp_path) -> tuple[Path, str]:
    folder = tmp_path / "train"
    shutil.copytree(shards, folder)
    return folder, tamper_colour(folder / "00001.tar", 2)


def loaded_keys(folder: Path, workers: int = 0) -> list[str]:
    config = LoaderConfig(shards=(str(folder),), batch_size=4, workers=workers, shuffle_buffer=0, shuffle_shards=False)
    return [key for batch in make_loader(config) for key in batch["__key__"]]


def test_the_loader_skips_a_damaged_sample_with_one_line_naming_shard_and_sample(shards, damaged, caplog):
    folder, key = damaged
    every = loaded_keys(shards)
    with caplog.at_level(logging.WARNING, logger="train.member_check"):
        kept = loaded_keys(folder)
    assert kept == [k for k in every if k != key] and len(kept) == COUNT - 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "train.member_check"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "00001.tar" in warnings[0] and key in warnings[0] and "color.png" in warnings[0] and "1 damaged" in warnings[0]


def test_eval_reports_a_damaged_sample_as_unscored_not_scored(damaged):
    folder, key = damaged
    positions = sample_positions(folder)
    scored, unscored = [], []
    for batch in eval_loader(folder, positions, batch_size=4, workers=0, images=("color", "line", "hint"), with_palette=False):
        scored += batch["__key__"]
        unscored += batch["unscored"]
    assert key not in scored and len(scored) == COUNT - 1
    assert [(u.key, u.reason) for u in unscored] == [(key, DECODE_ERROR)]
    assert "color.png: differs from the SHA-256 recorded in 00001.parquet" in unscored[0].detail


def test_shards_written_before_member_digests_still_load(shards, tmp_path):
    folder = tmp_path / "train"
    shutil.copytree(shards, folder)
    for sidecar in folder.glob("*.parquet"):
        pq.write_table(pq.read_table(sidecar).drop_columns(["member_sha256"]), sidecar)
    assert loaded_keys(folder) == loaded_keys(shards) and len(loaded_keys(folder)) == COUNT


def test_worker_processes_check_members_too(damaged):
    folder, key = damaged
    kept = loaded_keys(folder, workers=2)
    assert key not in kept and len(kept) == COUNT - 1


def test_an_unreadable_sidecar_is_named_once_however_often_its_shard_comes_back(shards, tmp_path, caplog):
    folder = tmp_path / "train"
    shutil.copytree(shards, folder)
    sidecar = folder / "00001.parquet"
    sidecar.write_bytes(sidecar.read_bytes()[:-30])
    loader = make_loader(LoaderConfig(shards=(str(folder),), batch_size=4, workers=0, shuffle_buffer=0, shuffle_shards=False))
    with caplog.at_level(logging.WARNING, logger="train.member_check"):
        epochs = [[key for batch in loader for key in batch["__key__"]] for _ in range(3)]
    assert epochs[0] == epochs[1] == epochs[2] == loaded_keys(shards)
    warnings = [r.getMessage() for r in caplog.records if r.name == "train.member_check"]
    assert len(warnings) == 1 and "00001.parquet" in warnings[0] and "not checked" in warnings[0]
