"""`pipe prepare` as a stage: outputs, filters, duplicates, determinism, resume, crawl ledgers."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.schema import RAW
from tests.helpers import picture, rows_by_name, run_prepare, save_rgb


def _write(folder: Path, name: str, rgb: np.ndarray, quality: int = 92) -> Path:
    save_rgb(folder / name, rgb, quality)
    return folder / name


def test_outputs_are_512_rgb_pngs_named_by_content(tmp_path):
    src = tmp_path / "src"
    _write(src, "wide.jpg", picture(0, 1200, 700))
    _write(src, "nested/tall.png", picture(1, 600, 1100))
    _, table = run_prepare(src, tmp_path / "root")
    rows = rows_by_name(table)
    assert set(rows) == {"wide.jpg", "tall.png"}
    for name, row in rows.items():
        data = (src / ("nested/" if name == "tall.png" else "") / name).read_bytes()
        assert row["status"] == "ok" and row["key"] == hashlib.sha256(data).hexdigest()
        assert row["path"] == f"prepared/{row['key'][:2]}/{row['key']}.png"
        image = cv2.imread(str(tmp_path / "root" / row["path"]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (512, 512, 3) and image.dtype == np.uint8
        assert len(row["phash"]) == 16 and row["colorfulness"] > 15
    assert (rows["wide.jpg"]["crop_x"], rows["wide.jpg"]["crop_y"], rows["wide.jpg"]["crop_w"]) == (250, 0, 700)
    assert (rows["tall.png"]["crop_x"], rows["tall.png"]["crop_y"], rows["tall.png"]["crop_h"]) == (0, 250, 600)


def test_draft_decoding_matches_full_decoding(tmp_path):
    """JPEG DCT downscaling is a speed-up only: the 512 output stays close to a full-size decode."""
    src = tmp_path / "src"
    rgb = picture(2, 2400, 1800)
    _write(src, "big.jpg", rgb, quality=95)
    _, table = run_prepare(src, tmp_path / "root")
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "root" / table["path"][0].as_py())), cv2.COLOR_BGR2RGB)
    reference = cv2.resize(rgb[:, 300:2100], (512, 512), interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - reference).mean() < 2.5


def test_pad_mode_keeps_the_whole_picture(tmp_path):
    src = tmp_path / "src"
    _write(src, "wide.png", picture(3, 1000, 600))
    _, table = run_prepare(src, tmp_path / "root", crop="pad")
    row = table.to_pylist()[0]
    assert (row["crop_x"], row["crop_y"], row["crop_w"], row["crop_h"]) == (0, 0, 1000, 600)
    out = cv2.imread(str(tmp_path / "root" / row["path"]))
    assert (out[:50] == 255).all() and (out[-50:] == 255).all()  # 512x307 picture centred: white bands


def test_each_filter_rejects_with_its_reason(tmp_path):
    src = tmp_path / "src"
    rgb = picture(4)
    _write(src, "ok.png", rgb)
    _write(src, "small.png", picture(5, 511, 700))
    _write(src, "banner.png", picture(6, 1500, 600))
    _write(src, "grey.png", np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, 2))
    sepia_free_bright = np.clip(rgb.astype(int) // 8 + 230, 0, 255).astype(np.uint8)
    sepia_free_bright[:, :, 0] = 255  # coloured, but almost white
    _write(src, "bright.png", sepia_free_bright)
    _write(src, "dark.png", (rgb // 12).astype(np.uint8) + np.array([10, 0, 0], np.uint8) * (rgb // 12 > 0))
    _, table = run_prepare(src, tmp_path / "root", chroma_threshold=6)
    got = {name: (row["status"], row["reason"]) for name, row in rows_by_name(table).items()}
    assert got == {
        "ok.png": ("ok", None),
        "small.png": ("rejected", "too_small"),
        "banner.png": ("rejected", "aspect_ratio"),
        "grey.png": ("rejected", "grayscale"),
        "bright.png": ("rejected", "too_bright"),
        "dark.png": ("rejected", "too_dark"),
    }
    assert not (tmp_path / "root" / "prepared").exists() or len(list((tmp_path / "root" / "prepared").rglob("*.png"))) == 1


def test_duplicates_keep_one_deterministic_survivor(tmp_path):
    src = tmp_path / "src"
    rgb = picture(7, 900, 700)
    _write(src, "a_original.png", rgb)
    shutil.copy(src / "a_original.png", src / "b_copy.png")
    _write(src, "c_recompressed.jpg", rgb, quality=75)
    _write(src, "d_smaller.png", cv2.resize(rgb, (720, 560), interpolation=cv2.INTER_AREA))
    _write(src, "e_other.png", picture(8, 900, 700))
    _, table = run_prepare(src, tmp_path / "root")
    rows = rows_by_name(table)
    got = {name: (row["status"], row["reason"]) for name, row in rows.items()}
    # Same size: the key decides between the original and its recompressed twin; the smaller copy loses.
    survivor = min(("a_original.png", "c_recompressed.jpg"), key=lambda n: rows[n]["key"])
    loser = "c_recompressed.jpg" if survivor == "a_original.png" else "a_original.png"
    assert got[survivor] == ("ok", None) and got["e_other.png"] == ("ok", None)
    assert got["b_copy.png"] == (("rejected", "duplicate") if survivor == "a_original.png" else ("rejected", "near_duplicate"))
    assert got[loser] == ("rejected", "near_duplicate") and got["d_smaller.png"] == ("rejected", "near_duplicate")
    assert rows[loser]["duplicate_of"] == str(src / survivor)
    written = sorted(p.name for p in (tmp_path / "root" / "prepared").rglob("*.png"))
    assert written == sorted(f"{rows[n]['key']}.png" for n in (survivor, "e_other.png"))


def test_same_inputs_give_the_same_dataset_byte_for_byte(tmp_path):
    src = tmp_path / "src"
    for index in range(10):
        _write(src, f"img{index}.{'jpg' if index % 2 else 'png'}", picture(index, 700, 640))
    shutil.copy(src / "img1.jpg", src / "dup.jpg")
    run_prepare(src, tmp_path / "one", workers=0)
    run_prepare(src, tmp_path / "two", workers=2)

    def digest(root: Path) -> dict[str, str]:
        files = sorted(p for p in root.rglob("*") if p.is_file() and ".pipe" not in p.parts)
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    assert digest(tmp_path / "one") == digest(tmp_path / "two")


def test_resume_processes_only_new_inputs_and_keeps_earlier_decisions(tmp_path):
    src, root = tmp_path / "src", tmp_path / "root"
    rgb = picture(9, 700, 640)
    _write(src, "first.jpg", rgb, quality=80)
    first, _ = run_prepare(src, root)
    again, _ = run_prepare(src, root)
    assert first.processed == 1 and again.nothing_to_do
    # A larger near-copy arrives later: the earlier image stays kept, the newcomer is the duplicate.
    _write(src, "later_bigger.png", cv2.resize(rgb, (1400, 1280), interpolation=cv2.INTER_CUBIC))
    third, table = run_prepare(src, root)
    rows = rows_by_name(table)
    assert third.processed == 1
    assert rows["first.jpg"]["status"] == "ok"
    assert rows["later_bigger.png"]["reason"] == "near_duplicate"


def test_a_crawl_ledger_is_a_source(tmp_path):
    root = tmp_path / "root"
    raw_rel = "raw/ab/abcdef.jpg"
    _write(root, raw_rel, picture(10, 800, 700))
    rows = [
        {"key": "abcdef", "status": "ok", "post": "t:1", "path": raw_rel, "site": "t", "post_id": 1},
        {"key": "", "status": "rejected", "reason": "no_file_url", "post": "t:2", "site": "t", "post_id": 2},
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=RAW.arrow), root / "raw.parquet")
    _, table = run_prepare(root / "raw.parquet", root)
    assert table["source"].to_pylist() == ["t:1"]
    assert table["status"].to_pylist() == ["ok"]


@pytest.mark.slow
def test_sigkill_halfway_then_resume_gives_exactly_one_of_everything(tmp_path):
    src, root = tmp_path / "src", tmp_path / "root"
    rng = np.random.default_rng(0)
    for index in range(80):
        _write(src, f"img{index:03d}.jpg", picture(int(rng.integers(1 << 30)), 1600, 1200))
    command = [sys.executable, "-m", "pipeline.cli", "prepare", str(src), str(root), "--workers", "2", "--chunk-size", "2", "--save-every", "0.2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    # Kill once some outputs and a saved ledger part exist: mid-run whatever the machine's speed.
    deadline = time.monotonic() + 120
    parts = root / ".pipe" / "parts" / "prepared"
    while time.monotonic() < deadline and not (
        len(list((root / "prepared").rglob("*.png")) if (root / "prepared").exists() else []) >= 10
        and (list(parts.glob("part-*.parquet")) if parts.exists() else [])
    ):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (root / "prepared.parquet").exists(), "the run finished before it could be killed"
    done_before = len(list(root.rglob("*.png")))
    assert 0 < done_before < 80

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = pq.read_table(root / "prepared.parquet")
    assert table.num_rows == 80 and len(set(table["source"].to_pylist())) == 80
    assert set(table["status"].to_pylist()) == {"ok"}
    pngs = sorted(p.name for p in (root / "prepared").rglob("*.png"))
    assert pngs == sorted(f"{key}.png" for key in table["key"].to_pylist())
    state = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and not p.name.endswith(".png")}
    # No temporaries, no ledger parts: the ledger, the lock file and the run's summary.
    assert state == {"prepared.parquet", ".pipe/locks/prepared.lock", ".pipe/summaries/prepared.json", ".pipe/options/prepared.json", ".pipe/options/prepared.generation"}
