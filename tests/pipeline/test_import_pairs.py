"""`pipe import pairs`: side-by-side and folder pairs land aligned in prepared/ and lines/real/, every
input gets a ledger row, kept splits are recorded, and a killed import resumes to the same result."""

from __future__ import annotations

import hashlib
import json
import os
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

import pipeline.commands.import_pairs  # noqa: F401 - registers `pipe import` (until pipeline.cli imports it)
from pipeline.cli import main
from pipeline.importing.splits import kept_splits
from tests.helpers import picture

REPO = Path(__file__).resolve().parents[2]
# A colour half of 260 x 200: the centre crop is x 30..230, so a misaligned crop would show.
WIDTH, HEIGHT, SIZE = 260, 200, 128
SMALL = ["--size", str(SIZE), "--min-side", "100", "--workers", "0"]


# ----------------------------------------------------------------- generated pairs
def sketch_of(rgb: np.ndarray, thickness: int = 3) -> np.ndarray:
    """A grey line drawing of a colour image: its edges, black on white."""
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 50, 150)
    return 255 - cv2.dilate(edges, np.ones((thickness, thickness), np.uint8))


def write_image(path: Path, image: np.ndarray) -> Path:
    """PNG or JPEG by the name; RGB or grey arrays."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
    assert cv2.imwrite(str(path), bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def side_by_side(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    as_rgb = [np.dstack([half] * 3) if half.ndim == 2 else half for half in (left, right)]
    return np.concatenate(as_rgb, axis=1)


def reference_crop(image: np.ndarray) -> np.ndarray:
    """What the pair's half should become: its centre square, area-resized (computed here, not by pipe)."""
    height, width = image.shape[:2]
    side = min(width, height)
    x, y = (width - side) // 2, (height - side) // 2
    return cv2.resize(image[y : y + side, x : x + side], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def import_pairs(source: Path, root: Path, *options: str) -> int:
    return main(["import", "pairs", str(source), str(root), *options])


def ledger(root: Path, name: str) -> list[dict]:
    return pq.read_table(root / f"{name}.parquet").to_pylist()


def by_pair(root: Path, source: Path) -> dict[str, dict]:
    """imports.parquet rows by the pair's path relative to the source (one row per pair, checked)."""
    rows = {}
    for row in ledger(root, "imports"):
        name = Path(row["pair"]).relative_to(source.resolve()).as_posix()
        assert name not in rows, f"two rows for {name}"
        rows[name] = row
    return rows


def assert_aligned(root: Path, row: dict, color: np.ndarray, sketch: np.ndarray) -> None:
    """The colour and the line art of an ok pair are the same crop of their halves, resized alike."""
    out_color = read_rgb(root / row["path"])
    out_line = cv2.imread(str(root / row["line_path"]), cv2.IMREAD_UNCHANGED)
    assert out_color.shape == (SIZE, SIZE, 3) and out_line.shape == (SIZE, SIZE) and out_line.dtype == np.uint8
    want_color, want_line = reference_crop(color), reference_crop(sketch).astype(int)
    assert np.abs(out_color.astype(int) - want_color).mean() < 1.0
    aligned = np.abs(out_line.astype(int) - want_line).mean()
    assert aligned < 1.0
    # The comparison sees a misalignment: the line art two pixels off is far from its reference.
    assert np.abs(np.roll(out_line, 2, axis=1).astype(int) - want_line).mean() > aligned + 5


def assert_consistent(root: Path) -> None:
    """prepared.parquet has one row per pair, lines.parquet a `real` row per ok pair, and files match rows."""
    imports = ledger(root, "imports")
    prepared = {row["source"]: row for row in ledger(root, "prepared")}
    assert set(prepared) == {row["pair"] for row in imports}
    for row in imports:
        twin = prepared[row["pair"]]
        assert (twin["key"], twin["status"], twin["reason"], twin["path"]) == (row["key"], row["status"], row["reason"], row["path"])
    ok = {row["key"]: row for row in imports if row["status"] == "ok"}
    lines = ledger(root, "lines")
    assert {row["line"] for row in lines if row["method"] == "real"} == {f"real/{key}" for key in ok}
    for line in lines:
        assert line["status"] == "ok" and line["path"] == ok[line["key"]]["line_path"] and line["method"] == "real"
    on_disk = {p.relative_to(root).as_posix() for tree in ("prepared", "lines") if (root / tree).exists() for p in (root / tree).rglob("*") if p.is_file()}
    assert on_disk == {row["path"] for row in ok.values()} | {row["line_path"] for row in ok.values()}


# ----------------------------------------------------------------- side-by-side
def test_side_by_side_halves_land_aligned_and_splits_are_kept(tmp_path):
    source, root = tmp_path / "pairs", tmp_path / "root"
    halves = {}
    for index, name in enumerate(["train/a.png", "train/b.png", "val/c.png", "d.png", "extra/e.png"]):
        color = picture(index, WIDTH, HEIGHT)
        halves[name] = (color, sketch_of(color))
        write_image(source / name, side_by_side(color, halves[name][1]))  # the public set's order: colour left

    assert import_pairs(source, root, "--layout", "side-by-side", *SMALL) == 0
    rows = by_pair(root, source)
    assert set(rows) == set(halves)
    for name, row in rows.items():
        assert row["status"] == "ok", row
        assert row["key"] == hashlib.sha256((source / name).read_bytes()).hexdigest()
        assert (row["orig_width"], row["orig_height"], row["crop_x"], row["crop_y"], row["crop_w"]) == (WIDTH, HEIGHT, 30, 0, HEIGHT)
        assert_aligned(root, row, *halves[name])
    assert {name: row["split"] for name, row in rows.items()} == {"train/a.png": "train", "train/b.png": "train", "val/c.png": "val", "d.png": None, "extra/e.png": None}
    assert kept_splits(root) == {rows[n]["key"]: s for n, s in (("train/a.png", "train"), ("train/b.png", "train"), ("val/c.png", "val"))}
    assert_consistent(root)
    prepared = {row["source"]: row for row in ledger(root, "prepared")}
    assert all(row["dedupe_settled"] and len(row["phash"]) == 16 for row in prepared.values())
    assert all(line["width"] == SIZE and 0 < line["ink_fraction"] < 0.5 for line in ledger(root, "lines"))

    assert import_pairs(source, root, "--layout", "side-by-side", *SMALL) == 0  # nothing to do, nothing changes
    assert len(ledger(root, "imports")) == 5 and len(ledger(root, "prepared")) == 5 and len(ledger(root, "lines")) == 5

    # pipe shard packs the artists' lines and keeps the source's split: --val 0 leaves val/c.png in val,
    # and --val 0.99 cannot move train/a.png and train/b.png out of train.
    for val in ("0", "0.99"):
        assert main(["shard", str(root), "--lines", "real", "--hints", "points", "--artifacts", "none", "--val", val, "--workers", "0", "--redo"]) == 0
        shards = {row["key"]: row for row in ledger(root, "shards")}
        assert all(row["status"] == "ok" and row["line_source"] == "real" for row in shards.values())
        for name, split in (("train/a.png", "train"), ("train/b.png", "train"), ("val/c.png", "val")):
            assert shards[rows[name]["key"]]["split"] == split


def test_side_by_side_bad_pairs_each_get_their_reason(tmp_path, capsys):
    source, root = tmp_path / "pairs", tmp_path / "root"
    color = picture(10, WIDTH, HEIGHT)
    sketch = sketch_of(color)
    write_image(source / "good.png", side_by_side(sketch, color))  # this import's order: sketch left
    shutil.copy(source / "good.png", source / "good_copy.png")
    write_image(source / "odd.png", side_by_side(sketch, color)[:, :-1])
    (source / "notes.png").write_text("not a picture")
    write_image(source / "colored_sketch.png", side_by_side(picture(11, WIDTH, HEIGHT), color))
    write_image(source / "swapped.png", side_by_side(color, sketch))
    write_image(source / "grey.png", side_by_side(sketch, cv2.cvtColor(color, cv2.COLOR_RGB2GRAY)))
    small = picture(12, 80, 60)
    write_image(source / "small.png", side_by_side(sketch_of(small), small))

    assert import_pairs(source, root, "--layout", "side-by-side", "--order", "sketch-color", *SMALL) == 0
    rows = by_pair(root, source)
    outcome = {name: row["reason"] or row["status"] for name, row in rows.items()}
    assert outcome == {
        "good.png": "ok", "good_copy.png": "duplicate", "odd.png": "odd_width", "notes.png": "decode_error",
        "colored_sketch.png": "sketch_not_grey", "swapped.png": "halves_swapped", "grey.png": "grayscale", "small.png": "too_small",
    }
    assert rows["good_copy.png"]["duplicate_of"] == rows["good.png"]["pair"] and rows["good_copy.png"]["path"] is None
    assert "--order color-sketch" in rows["swapped.png"]["detail"]
    assert "odd" in rows["odd.png"]["detail"] and "--max-sketch-color" in rows["colored_sketch.png"]["detail"]
    assert_aligned(root, rows["good.png"], color, sketch)  # the colour is the right half here
    assert_consistent(root)
    assert "Traceback" not in capsys.readouterr().err


# ----------------------------------------------------------------- folders
def test_folder_pairs_match_by_name_and_every_file_gets_a_row(tmp_path):
    source, root = tmp_path / "pairs", tmp_path / "root"
    pairs = {}

    def pair(color_name: str, sketch_name: str, seed: int) -> None:
        color = picture(seed, WIDTH, HEIGHT)
        pairs[color_name] = (color, sketch_of(color))
        write_image(source / color_name, color)
        write_image(source / sketch_name, pairs[color_name][1])

    pair("train/color/a.png", "train/sketch/a.png", 20)
    pair("val/color/b.png", "val/sketch/b.png", 21)
    pair("color/c.png", "sketch/c.png", 22)
    pair("color/nested/d.png", "sketch/nested/d.jpg", 23)  # names pair up without their extension
    write_image(source / "color/m.png", picture(24, WIDTH, HEIGHT))  # no sketch
    write_image(source / "sketch/n.png", sketch_of(picture(25, WIDTH, HEIGHT)))  # no colour
    write_image(source / "color/s.png", picture(26, WIDTH, HEIGHT))
    write_image(source / "sketch/s.png", sketch_of(picture(26, WIDTH // 2, HEIGHT // 2)))  # half the size
    write_image(source / "color/g.png", picture(27, WIDTH, HEIGHT))
    write_image(source / "sketch/g.png", picture(28, WIDTH, HEIGHT))  # a colour image as the sketch
    write_image(source / "color/u.png", picture(29, WIDTH, HEIGHT))
    (source / "sketch/u.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # undecodable sketch
    for name in ("color/q.png", "color/q.jpg"):
        write_image(source / name, picture(30, WIDTH, HEIGHT))
    write_image(source / "sketch/q.png", sketch_of(picture(30, WIDTH, HEIGHT)))
    # One colour file twice with different sketches: the kept pair (x1) must keep its own sketch on disk.
    color = picture(31, WIDTH, HEIGHT)
    write_image(source / "color/x1.png", color)
    shutil.copy(source / "color/x1.png", source / "color/x2.png")
    write_image(source / "sketch/x1.png", sketch_of(color, thickness=3))
    write_image(source / "sketch/x2.png", sketch_of(color, thickness=7))

    assert import_pairs(source, root, "--layout", "folders", *SMALL) == 0
    rows = by_pair(root, source)
    outcome = {name: row["reason"] or row["status"] for name, row in rows.items()}
    assert outcome == {
        "train/color/a.png": "ok", "val/color/b.png": "ok", "color/c.png": "ok", "color/nested/d.png": "ok",
        "color/m.png": "missing_sketch", "sketch/n.png": "missing_color", "color/s.png": "size_mismatch",
        "color/g.png": "sketch_not_grey", "color/u.png": "decode_error",
        "color/q.png": "ambiguous_pair", "color/q.jpg": "ambiguous_pair", "sketch/q.png": "ambiguous_pair",
        "color/x1.png": "ok", "color/x2.png": "duplicate",
    }
    assert rows["color/u.png"]["detail"].startswith("sketch file:")
    assert "260x200" in rows["color/s.png"]["detail"] and "130x100" in rows["color/s.png"]["detail"]
    assert {name: row["split"] for name, row in rows.items() if row["status"] == "ok"} == {
        "train/color/a.png": "train", "val/color/b.png": "val", "color/c.png": None, "color/nested/d.png": None, "color/x1.png": None,
    }
    for name, (color_half, sketch_half) in pairs.items():
        assert rows[name]["key"] == hashlib.sha256((source / name).read_bytes()).hexdigest()  # the key `pipe prepare` gives it
        assert_aligned(root, rows[name], color_half, sketch_half)
    assert_aligned(root, rows["color/x1.png"], color, sketch_of(color, thickness=3))
    assert_consistent(root)


def test_redo_with_stricter_options_drops_what_is_no_longer_kept(tmp_path):
    source, root = tmp_path / "pairs", tmp_path / "root"
    for name, (width, height) in {"big": (WIDTH, HEIGHT), "smaller": (150, 120)}.items():
        color = picture(len(name), width, height)
        write_image(source / "color" / f"{name}.png", color)
        write_image(source / "sketch" / f"{name}.png", sketch_of(color))
    assert import_pairs(source, root, "--layout", "folders", *SMALL) == 0
    assert [row["status"] for row in ledger(root, "imports")] == ["ok", "ok"]

    assert import_pairs(source, root, "--layout", "folders", *SMALL, "--min-side", "150") == 2  # a changed option is refused
    assert import_pairs(source, root, "--layout", "folders", *SMALL, "--min-side", "150", "--redo") == 0
    rows = by_pair(root, source)
    assert (rows["color/big.png"]["status"], rows["color/smaller.png"]["reason"]) == ("ok", "too_small")
    prepared = {Path(row["source"]).name: row for row in ledger(root, "prepared")}
    assert prepared["smaller.png"]["reason"] == "too_small" and prepared["smaller.png"]["path"] is None
    lines = {row["key"]: row for row in ledger(root, "lines")}
    assert lines[rows["color/smaller.png"]["key"]]["status"] == "rejected" and lines[rows["color/big.png"]["key"]]["status"] == "ok"
    kept = rows["color/big.png"]
    assert sorted(p.relative_to(root).as_posix() for p in root.glob("[pl]*/**/*.png")) == sorted([kept["path"], kept["line_path"]])


# ----------------------------------------------------------------- user mistakes
def test_user_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
    source, root = tmp_path / "pairs", tmp_path / "root"
    write_image(source / "color/a.png", picture(40, WIDTH, HEIGHT))
    cases = [
        ([], "--layout is required"),
        (["--layout", "stacked"], "--layout must be one of: side-by-side, folders"),
        (["--layout", "folders", "--order", "sketch-color"], "--order goes with --layout side-by-side"),
        (["--layout", "side-by-side", "--color-dir", "images"], "--color-dir and --sketch-dir go with --layout folders"),
        (["--layout", "folders"], "has a color/ folder but no sketch/ folder"),
        (["--layout", "folders", "--color-dir", "images", "--sketch-dir", "lines"], "has no images/ and lines/ folders"),
        (["--layout", "side-by-side", "--crop", "face"], "--crop must be one of: center, pad"),
    ]
    for options, message in cases:
        assert import_pairs(source, root, *options) == 2, options
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (options, err)
    assert import_pairs(tmp_path / "absent", root, "--layout", "folders") == 2
    assert "source not found" in capsys.readouterr().err
    assert not root.exists()


# ----------------------------------------------------------------- resume
def _snapshot(root: Path) -> dict[str, bytes]:
    """Every ledger and output file's bytes (not the run's own bookkeeping: summaries, locks)."""
    files = [root / f"{name}.parquet" for name in ("imports", "prepared", "lines")]
    files += [p for tree in ("prepared", "lines") for p in sorted((root / tree).rglob("*")) if p.is_file()]
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_result(tmp_path):
    source = tmp_path / "pairs"
    bases = [picture(seed, 800, 640) for seed in range(4)]
    for index in range(32):
        color = bases[index % 4].copy()
        color[0, 0] = (index, 7, 99)  # every file its own bytes, hence its own key
        write_image(source / ("train" if index % 3 else "val") / f"p{index:02d}.png", side_by_side(color, sketch_of(color)))
    options = ["--layout", "side-by-side", "--workers", "0", "--chunk-size", "1", "--save-every", "0"]

    whole = tmp_path / "whole"  # imported by a worker process: the same result as in-process
    assert import_pairs(source, whole, *options, "--workers", "1") == 0

    root = tmp_path / "killed"
    runner = "import pipeline.commands.import_pairs; from pipeline.cli import main; import sys; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", runner, "import", "pairs", str(source), str(root), *options]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    parts = root / ".pipe" / "parts" / "imports"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 2):
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (root / "imports.parquet").exists(), "the import finished before it could be killed"

    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((root / ".pipe" / "summaries" / "imports.json").read_text())
    assert 0 < summary["skipped"] < 32, summary  # the rerun resumed a run killed halfway
    assert _snapshot(root) == _snapshot(whole)
    assert len(ledger(root, "imports")) == 32 and {row["status"] for row in ledger(root, "imports")} == {"ok"}
    # No temporaries, no ledger parts: a killed run leaves no half-written file behind.
    leftovers = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    assert [p for p in leftovers if p.name.endswith(".tmp") or {"parts", "tmp"} & set(p.parts)] == []


def test_a_colour_prepare_already_made_stays_prepares(tmp_path):
    """Importing pairs whose colour file was prepared into the same root: that pair is a duplicate of the
    prepared image (whose file stays prepare's), the others import as usual."""
    source, root = tmp_path / "pairs", tmp_path / "root"
    for name, seed in (("a", 50), ("b", 51)):
        color = picture(seed, WIDTH, HEIGHT)
        write_image(source / "color" / f"{name}.png", color)
        write_image(source / "sketch" / f"{name}.png", sketch_of(color))
    only_a = tmp_path / "prepare-me"
    only_a.mkdir()
    shutil.copy(source / "color/a.png", only_a / "a.png")
    assert main(["prepare", str(only_a), str(root), "--size", "96", "--min-side", "100", "--workers", "0"]) == 0
    before = {p.name: p.read_bytes() for p in (root / "prepared").rglob("*.png")}

    assert import_pairs(source, root, "--layout", "folders", *SMALL) == 0
    rows = by_pair(root, source)
    assert (rows["color/a.png"]["reason"], rows["color/a.png"]["duplicate_of"]) == ("duplicate", str(only_a.resolve() / "a.png"))
    assert rows["color/b.png"]["status"] == "ok"
    after = {p.name: p.read_bytes() for p in (root / "prepared").rglob("*.png")}
    assert {name: after[name] for name in before} == before  # prepare's image untouched
    assert [p.name for p in (root / "lines" / "real").rglob("*.png")] == [f"{rows['color/b.png']['key']}.png"]
    prepared = {row["source"]: row["status"] for row in ledger(root, "prepared")}
    assert prepared == {str(only_a.resolve() / "a.png"): "ok", rows["color/a.png"]["pair"]: "rejected", rows["color/b.png"]["pair"]: "ok"}
    assert [row["line"] for row in ledger(root, "lines")] == [f"real/{rows['color/b.png']['key']}"]


def test_a_resume_refuses_when_imported_files_are_gone(tmp_path, capsys):
    source, root = tmp_path / "pairs", tmp_path / "root"
    color = picture(60, WIDTH, HEIGHT)
    write_image(source / "a.png", side_by_side(color, sketch_of(color)))
    assert import_pairs(source, root, "--layout", "side-by-side", *SMALL) == 0
    shutil.rmtree(root / "prepared")  # what `pipe prepare --redo` does
    capsys.readouterr()
    assert import_pairs(source, root, "--layout", "side-by-side", *SMALL) == 2
    assert "files of imported pairs are missing" in capsys.readouterr().err
    assert import_pairs(source, root, "--layout", "side-by-side", *SMALL, "--redo") == 0
    assert_consistent(root)
    assert_aligned(root, ledger(root, "imports")[0], color, sketch_of(color))
