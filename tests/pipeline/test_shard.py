"""`pipe shard`: every sample packed once, failures recorded, byte-identical reruns, SIGKILL resume,
read-back with the plain webdataset library, --verify, and one-line errors."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import webdataset as wds
from PIL import Image

from pipeline.cli import main
from pipeline.shard.plan import split_of
from synth.hints import apply_hints
from tests.helpers import REAL_DATA, make_prepared_dataset

COUNT = 60
OPTIONS = ["--lines", "xdog=2,dilate", "--hints", "points,patches,cfid,palette,histogram", "--no-hint-share", "0.2", "--shard-samples", "8", "--val", "0.2"]


def shard_args(root: Path, *extra: str) -> list[str]:
    return ["shard", str(root), *OPTIONS, *extra]


def tar_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "shards").rglob("*.tar"))}


def decode_png_with_pillow(key: str, data: bytes):
    """PNG members as arrays in their stored mode (RGB, L, RGBA), decoded by Pillow, not OpenCV."""
    if not key.endswith(".png"):
        return None
    return np.asarray(Image.open(io.BytesIO(data)))


def read_back(root: Path) -> list[dict]:
    """Every sample of every shard, through the plain webdataset library (its JSON and .npy decoders)."""
    urls = [str(p) for p in sorted((root / "shards").rglob("*.tar"))]
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode(decode_png_with_pillow)
    return list(dataset)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """60 illustrations with xdog and dilate lines, 2 more without lines, 1 whose PNG is corrupted."""
    root = tmp_path_factory.mktemp("shard") / "root"
    keys = make_prepared_dataset(root, COUNT, size=96)
    assert main(["extract", str(root), "--method", "xdog,dilate", "--workers", "0"]) == 0
    make_prepared_dataset(root, 2, size=96, seed=99)
    corrupt = root / "prepared" / keys[0][:2] / f"{keys[0]}.png"
    corrupt.write_bytes(corrupt.read_bytes()[:200])
    return root


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("reference") / "root"
    shutil.copytree(dataset, root)
    assert main(shard_args(root, "--workers", "2")) == 0
    return root


def copy_of(dataset: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(dataset, root)
    return root


def test_every_sample_is_in_exactly_one_shard_and_failures_have_reasons(reference):
    ledger = pq.read_table(reference / "shards.parquet").to_pylist()
    assert len(ledger) == COUNT + 2
    by_status: dict[tuple, int] = {}
    for row in ledger:
        by_status[(row["status"], row["reason"])] = by_status.get((row["status"], row["reason"]), 0) + 1
    assert by_status == {("ok", None): COUNT - 1, ("failed", "no_lines"): 2, ("failed", "decode_error"): 1}
    ok = {row["key"]: row for row in ledger if row["status"] == "ok"}
    samples = read_back(reference)
    keys = [s["__key__"] for s in samples]
    assert sorted(keys) == sorted(ok) and len(set(keys)) == len(keys)
    for sample in samples:
        meta = sample["json"]
        assert set(sample) >= {"color.png", "line.png", "hint.png", "draft.png", "palette.npy", "json"}
        assert sample["color.png"].shape == (96, 96, 3) and sample["draft.png"].shape == (96, 96, 3)
        assert sample["hint.png"].shape == (96, 96, 4) and sample["line.png"].shape == (96, 96)
        assert sample["palette.npy"].shape == (4, 4, 3)
        assert meta["key"] == sample["__key__"] and meta["seed"] == 0
        assert meta["split"] == split_of(sample["__key__"], 0.2) == ok[sample["__key__"]]["split"]
        assert meta["line"]["source"] in ("xdog", "dilate") and 0.7 <= meta["line"]["jitter"] <= 1
        assert set(meta["artifacts"]) == {"paste", "warp", "spray"}
        assert ok[sample["__key__"]]["shard"].startswith(meta["split"] + "/")
        hint = meta["hint"]
        given = hint["scheme"] != "none" and not (hint["scheme"] == "points" and not hint["yx"])  # N = 0 points is allowed
        assert sample["hint.png"][..., 3].any() == given
    for split in ("train", "val"):
        stats = [json.loads(p.read_text()) for p in sorted((reference / "shards" / split).glob("*_stats.json"))]
        assert stats and all(0 < s["count"] <= 8 for s in stats)
        assert sum(s["count"] for s in stats) == sum(1 for r in ok.values() if r["split"] == split)


def test_recorded_parameters_rebuild_the_hint(reference):
    for sample in read_back(reference)[:10]:
        color = np.ascontiguousarray(sample["color.png"].transpose(2, 0, 1))
        hint = apply_hints(torch.from_numpy(color)[None], [sample["json"]["hint"]])[0].permute(1, 2, 0).numpy()
        assert np.array_equal(hint, sample["hint.png"])


def test_same_seed_gives_byte_identical_shards_and_another_seed_other_hints(dataset, reference, tmp_path):
    again = copy_of(dataset, tmp_path / "again")
    assert main(shard_args(again, "--workers", "0")) == 0
    assert tar_bytes(again) == tar_bytes(reference)
    other = copy_of(dataset, tmp_path / "other")
    assert main(shard_args(other, "--workers", "2", "--seed", "1")) == 0
    hints = {s["__key__"]: s["json"]["hint"] for s in read_back(reference)}
    other_hints = {s["__key__"]: s["json"]["hint"] for s in read_back(other)}
    assert hints.keys() == other_hints.keys()
    differing = sum(hints[k] != other_hints[k] for k in hints)
    assert differing > 0.8 * len(hints)


@pytest.mark.slow
def test_killed_mid_shard_resumes_without_partial_tars_or_duplicates(dataset, reference, tmp_path):
    root = copy_of(dataset, tmp_path)
    command = [sys.executable, "-m", "pipeline.cli", *shard_args(root, "--workers", "2")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    train = root / "shards" / "train"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(train.glob("*_stats.json")):
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = len(list(train.glob("*_stats.json")))
    assert 0 < finished_before < len(list((reference / "shards" / "train").glob("*_stats.json"))), "not killed mid-run"
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    keys = [s["__key__"] for s in read_back(root)]
    assert len(keys) == len(set(keys)) == COUNT - 1
    assert tar_bytes(root) == tar_bytes(reference)
    assert not [p for p in (root / "shards").rglob("*") if p.suffix == ".tmp"]
    assert not [p for p in (root / ".pipe" / "tmp").rglob("*") if p.is_file()] if (root / ".pipe" / "tmp").exists() else True
    assert main(["shard", str(root), "--verify"]) == 0


def test_verify_finds_tampered_and_unfinished_shards(reference, tmp_path, capsys):
    assert main(["shard", str(reference), "--verify"]) == 0
    assert "all good" in capsys.readouterr().err
    root = tmp_path / "root"
    shutil.copytree(reference, root)
    shard = sorted((root / "shards" / "train").glob("*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[1024] ^= 0xFF  # inside the first member's payload
    shard.write_bytes(bytes(data))
    (root / "shards" / "train" / "00099.tar").write_bytes(b"")
    assert main(["shard", str(root), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "train/00000.tar: size or SHA-256 differs" in err
    assert "train/00099.tar: no done-marker" in err


def test_a_finished_run_is_a_no_op_and_changed_options_need_redo(reference, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(reference, root)
    before = tar_bytes(root)
    assert main(shard_args(root, "--workers", "0")) == 0
    assert "0 skipped" not in capsys.readouterr().err
    assert tar_bytes(root) == before
    assert main(["shard", str(root), "--lines", "xdog", "--hints", "blur"]) == 2
    assert "--redo" in capsys.readouterr().err
    assert main(["shard", str(root), "--lines", "xdog", "--hints", "blur", "--artifacts", "none", "--redo", "--workers", "0"]) == 0
    samples = read_back(root)
    assert samples and all("draft.png" not in s and s["json"]["line"]["source"] == "xdog" for s in samples)
    assert {s["json"]["hint"]["scheme"] for s in samples} == {"blur"}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--hints", "sparkles"], "unknown hint scheme sparkles"),
        (["--artifacts", "smudge"], "unknown artifact smudge"),
        (["--lines", "xdog=-1"], "must be > 0"),
        (["--jpeg", "hint"], "--jpeg: unknown member hint"),
        (["--jpeg", "color", "--jpeg-quality", "0"], "Invalid value for '--jpeg-quality'"),
    ],
)
def test_bad_options_are_one_line_errors(dataset, args, message, capsys):
    assert main(["shard", str(dataset), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_shard_before_extract_says_what_to_run(tmp_path, capsys):
    make_prepared_dataset(tmp_path, 2, size=64)
    assert main(["shard", str(tmp_path)]) == 2
    assert "pipe extract" in capsys.readouterr().err
    assert main(["shard", str(tmp_path / "nowhere"), "--verify"]) == 2


@pytest.mark.skipif(not (REAL_DATA / "real" / "color").is_dir(), reason="real illustrations not available")
def test_real_illustrations_become_readable_shards(tmp_path):
    root = tmp_path / "root"
    assert main(["prepare", str(REAL_DATA / "real" / "color"), str(root), "--workers", "2"]) == 0
    assert main(["extract", str(root), "--method", "xdog,dilate", "--workers", "2"]) == 0
    assert main(["shard", str(root), "--hints", "patches,points,palette", "--workers", "2"]) == 0
    ok = [r for r in pq.read_table(root / "shards.parquet").to_pylist() if r["status"] == "ok"]
    samples = read_back(root)
    assert len(samples) == len(ok) >= 10
    for sample in samples:
        assert sample["color.png"].shape == (512, 512, 3) and sample["hint.png"].shape == (512, 512, 4)
        assert sample["draft.png"].shape == (512, 512, 3) and sample["palette.npy"].shape == (4, 4, 3)
    assert main(["shard", str(root), "--verify"]) == 0


def test_contact_sheet_shows_colour_line_hint_draft_per_sample(reference, tmp_path):
    out = tmp_path / "sheet.png"
    assert main(["shard", str(reference), "--contact-sheet", str(out)]) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.shape == (22 + 6 * 256, 4 * 256, 3)


def test_shards_close_at_the_byte_limit(dataset, tmp_path):
    root = copy_of(dataset, tmp_path)
    assert main(["shard", str(root), "--lines", "xdog", "--val", "0", "--shard-mb", "0.1", "--workers", "0"]) == 0
    stats = [json.loads(p.read_text()) for p in sorted((root / "shards" / "train").glob("*_stats.json"))]
    assert sum(s["count"] for s in stats) == COUNT - 1
    assert len(stats) > 1 and all(s["bytes"] <= 0.1 * 1024 * 1024 for s in stats[:-1])
    assert max(s["count"] for s in stats) < COUNT - 1


def test_gray_is_not_line_art_unless_named(tmp_path, capsys):
    root = tmp_path / "root"
    make_prepared_dataset(root, 16, size=64)
    assert main(["extract", str(root), "--method", "xdog,gray", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--gray-share", "0", "--val", "0.3", "--workers", "0"]) == 0
    sources = [r["line_source"] for r in pq.read_table(root / "shards.parquet").to_pylist()]
    assert len(sources) == 16 and set(sources) == {"xdog"}
    # Named in --lines, gray is drawn like any method.
    assert main(["shard", str(root), "--lines", "xdog,gray", "--val", "0.3", "--redo", "--workers", "0"]) == 0
    sources = [r["line_source"] for r in pq.read_table(root / "shards.parquet").to_pylist()]
    assert set(sources) == {"xdog", "gray"}
    # Only gray extracted: there is no line art to default to.
    other = tmp_path / "other"
    make_prepared_dataset(other, 2, size=64)
    assert main(["extract", str(other), "--method", "gray", "--workers", "0"]) == 0
    assert main(["shard", str(other), "--workers", "0"]) == 2
    assert "no line art" in capsys.readouterr().err


def test_a_val_split_too_small_for_fid_is_a_warning_that_names_val(tmp_path, capsys):
    root = tmp_path / "root"
    keys = make_prepared_dataset(root, 10, size=64)  # one of them in val at 5%
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    capsys.readouterr()
    assert main(["shard", str(root), "--workers", "0"]) == 0
    val = sum(split_of(key, 0.05) == "val" for key in keys)
    err = " ".join(capsys.readouterr().err.split())
    assert val < 2 and f"warning: the val split will hold {val} of 10 samples (--val 0.05)" in err
    suggested = float(re.search(r"--val (0\.\d\d) gives at least 2", err).group(1))
    assert sum(split_of(key, suggested) == "val" for key in keys) >= 2
    assert main(["shard", str(root), "--val", str(suggested), "--redo", "--workers", "0"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_artifacts_near_hints_put_every_paste_and_spray_on_a_hint_and_are_recorded(dataset, tmp_path, capsys):
    root = copy_of(dataset, tmp_path)
    assert main(["shard", str(root), "--lines", "xdog", "--hints", "points,patches", "--artifacts-near-hints", "--workers", "0", "--val", "0"]) == 0
    assert json.loads((root / "shards" / "_config.json").read_text())["artifacts_near_hints"] is True
    checked = 0
    for sample in read_back(root):
        alpha = sample["hint.png"][..., 3] > 0
        artifacts = sample["json"]["artifacts"]
        if not alpha.any():
            continue
        for paste in artifacts["paste"]["pastes"]:
            (y0, x0), (h, w) = paste["target"], paste["size"]
            assert alpha[y0 : y0 + h, x0 : x0 + w].any()
            checked += 1
        for stroke in artifacts["spray"]["strokes"]:
            y, x = (int(v) for v in stroke["points"][0])
            assert alpha[y, x]
    assert checked > 20
    # Left off on a resume, the flag takes its recorded value (and says so); another seed is refused.
    assert main(["shard", str(root), "--lines", "xdog", "--hints", "points,patches", "--workers", "0", "--val", "0"]) == 0
    assert "options recorded in" in capsys.readouterr().err
    assert main(["shard", str(root), "--lines", "xdog", "--seed", "1", "--workers", "0", "--val", "0"]) == 2
    assert "--seed was 0, now 1" in capsys.readouterr().err


def test_jpeg_members_are_close_to_the_png_ones_and_verify(dataset, reference, tmp_path, capsys):
    """--jpeg color,draft: those members as JPEG (same draws), line and hint still PNG, byte-identical reruns."""
    root = copy_of(dataset, tmp_path)
    assert main(shard_args(root, "--workers", "2", "--jpeg", "color,draft", "--jpeg-quality", "95")) == 0
    lossy = {s["__key__"]: s for s in read_back(root)}
    exact = {s["__key__"]: s for s in read_back(reference)}
    assert lossy.keys() == exact.keys() and len(lossy) == COUNT - 1  # the corrupt image fails in both
    psnr = []
    for key, sample in lossy.items():
        assert {"color.jpg", "line.png", "hint.png", "json"} <= sample.keys() and "color.png" not in sample
        assert sample["json"] == exact[key]["json"]  # the same draws: only the encoding differs
        np.testing.assert_array_equal(sample["line.png"], exact[key]["line.png"])
        np.testing.assert_array_equal(sample["hint.png"], exact[key]["hint.png"])
        for member in ("color", "draft"):
            if f"{member}.png" in exact[key]:
                decoded = np.asarray(Image.open(io.BytesIO(sample[f"{member}.jpg"])).convert("RGB"))
                psnr.append(cv2.PSNR(decoded, exact[key][f"{member}.png"]))
    assert min(psnr) > 30 and np.mean(psnr) > 35, (min(psnr), np.mean(psnr))
    assert main(["shard", str(root), "--verify"]) == 0
    assert "all good" in capsys.readouterr().err
    again = copy_of(dataset, tmp_path / "again")
    assert main(shard_args(again, "--workers", "0", "--jpeg", "color,draft")) == 0
    assert tar_bytes(again) == tar_bytes(root)
    # A resumed run must keep the format: a changed --jpeg is refused, naming the option.
    assert main(shard_args(root, "--jpeg", "color")) == 2
    assert "--jpeg was color,draft, now color" in capsys.readouterr().err
