"""`pipe colorize` as a new user meets it: it never writes over the user's sketches, hints or earlier
outputs; it says how many sketches had a hint file and refuses a hint folder that matches none; a
hint layer of another size than its sketch is refused (as `pipe serve` refuses it); a model that
takes no hints ignores them with one warning; unreadable sketches are skipped, counted and named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.serve.uploads import BadInput, decode_hints, decode_sketch
from tests.helpers import make_prepared_dataset

SIZE = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """One-step 64 px drafts: xu2020 (takes no hints) and cheng2018 (reads RGB hints)."""
    root = tmp_path_factory.mktemp("colorize") / "root"
    make_prepared_dataset(root, 8, size=SIZE)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--val", "0.25", "--shard-samples", "4", "--workers", "0"]) == 0
    for recipe in ("xu2020", "cheng2018"):
        args = ["train", "draft", str(root), "--recipe", recipe, "--steps", "1", "--batch-size", "2", "--size", str(SIZE), "--workers", "0",
                "--width", "0.25", "--no-content-loss", "--name", recipe]
        assert main(args) == 0
    return {recipe: root / "runs" / recipe / "checkpoints" / "last.pt" for recipe in ("xu2020", "cheng2018")}


def sketch(path: Path, height: int = 48, width: int = 80) -> Path:
    lines = np.full((height, width), 255, np.uint8)
    cv2.rectangle(lines, (10, 10), (width - 20, height - 8), 0, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), lines)
    return path


def hint(path: Path, height: int = 48, width: int = 80) -> Path:
    layer = np.zeros((height, width, 4), np.uint8)
    layer[15:25, 15:30] = (0, 0, 255, 255)  # BGRA: opaque red
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), layer)
    return path


def run(capsys, *args: str | Path) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["colorize", *map(str, args), "--device", "cpu"])
    return code, " ".join(capsys.readouterr().err.split())


def one_line_error(capsys, *args: str | Path) -> str:
    capsys.readouterr()
    assert main(["colorize", *map(str, args), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return " ".join(err.split())


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# Finding 1 (#5) ----------------------------------------------------------------------------------
def test_the_sketch_folder_or_an_input_file_is_never_an_output(models, tmp_path, capsys):
    folder = tmp_path / "skpng"
    sketch(folder / "box.png")
    sketch(folder / "cup.png", 64, 64)
    before = contents(folder)
    draft = ["--draft", models["xu2020"]]
    assert f"--out {folder} is the sketch folder" in one_line_error(capsys, folder, *draft, "-o", folder)
    # One sketch named, its own folder as the output: its coloured image would replace it.
    err = one_line_error(capsys, folder / "box.png", *draft, "-o", folder)
    assert f"would replace your input {folder / 'box.png'}" in err
    # Hints read from the output folder would be replaced too.
    hints = tmp_path / "hints"
    hint(hints / "box.png")
    hints_before = contents(hints)
    err = one_line_error(capsys, folder, "--draft", models["cheng2018"], "--hints", hints, "-o", hints)
    assert f"--out {hints} is the hint folder" in err
    assert contents(folder) == before and contents(hints) == hints_before


def test_existing_outputs_are_kept_unless_overwrite(models, tmp_path, capsys):
    folder = tmp_path / "sketches"
    sketch(folder / "box.png")
    sketch(folder / "cup.png", 64, 64)
    out = tmp_path / "out"
    args = [folder, "--draft", models["xu2020"], "-o", out]
    assert run(capsys, *args)[0] == 0
    (out / "box.png").write_bytes(b"my own edit")
    err = one_line_error(capsys, *args)
    assert f"2 of 2 coloured images already exist in {out} (first: box.png): pass --overwrite to replace them" in err
    assert (out / "box.png").read_bytes() == b"my own edit"
    code, err = run(capsys, *args, "--overwrite")
    assert code == 0 and "coloured 2 of 2 sketches" in err
    assert cv2.imread(str(out / "box.png")).shape == (48, 80, 3)


def test_two_sketches_that_would_write_one_file_are_refused(models, tmp_path, capsys):
    folder = tmp_path / "sketches"
    sketch(folder / "box.png")
    sketch(folder / "box.jpg")
    err = one_line_error(capsys, folder, "--draft", models["xu2020"], "-o", tmp_path / "out")
    assert f"box.jpg and box.png would both be written to {tmp_path / 'out' / 'box.png'}" in err
    assert not (tmp_path / "out").exists()


# Finding 4 (#8) ----------------------------------------------------------------------------------
def test_hint_folders_are_counted_and_one_that_matches_nothing_is_refused(models, tmp_path, capsys):
    folder = tmp_path / "sketches"
    sketch(folder / "box.png")
    sketch(folder / "cup.png")
    hints = tmp_path / "hints"
    hint(hints / "Box-hint.png")
    base = [folder, "--draft", models["cheng2018"]]
    err = one_line_error(capsys, *base, "--hints", hints, "-o", tmp_path / "none")
    assert f"--hints {hints}: no hint file matches a sketch" in err and str(hints / "box.png") in err
    assert not (tmp_path / "none").exists()
    hint(hints / "cup.png")
    code, err = run(capsys, *base, "--hints", hints, "-o", tmp_path / "some")
    assert code == 0 and f"hints: 1 of 2 sketches had a hint file in {hints}" in err
    plain = tmp_path / "plain"
    assert run(capsys, *base, "-o", plain)[0] == 0
    # The hinted sketch changed, the other did not.
    assert not np.array_equal(cv2.imread(str(tmp_path / "some" / "cup.png")), cv2.imread(str(plain / "cup.png")))
    assert np.array_equal(cv2.imread(str(tmp_path / "some" / "box.png")), cv2.imread(str(plain / "box.png")))
    assert "no such file or folder" in one_line_error(capsys, *base, "--hints", tmp_path / "hnits", "-o", tmp_path / "typo")


# Finding 5 (#9) ----------------------------------------------------------------------------------
def test_a_hint_layer_of_another_size_is_refused_as_serve_refuses_it(models, tmp_path, capsys):
    folder = tmp_path / "sketches"
    sketch(folder / "box.png")
    sketch(folder / "cup.png")
    hints = tmp_path / "hints"
    hint(hints / "box.png", 96, 160)  # twice the sketch's size: stretched, every hint would move
    hint(hints / "cup.png")
    with pytest.raises(BadInput) as served:
        decode_hints((hints / "box.png").read_bytes(), decode_sketch((folder / "box.png").read_bytes()))
    assert served.value.status == 422
    code, err = run(capsys, folder, "--draft", models["cheng2018"], "--hints", hints, "-o", tmp_path / "out")
    assert code == 0 and "coloured 1 of 2 sketches" in err
    assert f"skipped 1 of 2: {folder / 'box.png'}: hint box.png is 160x96, the sketch is 80x48: give a hint layer of the sketch's size" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cup.png"]
    err = one_line_error(capsys, folder / "box.png", "--draft", models["cheng2018"], "--hints", hints / "box.png", "-o", tmp_path / "one")
    assert f"could not colour {folder / 'box.png'}: hint box.png is 160x96, the sketch is 80x48" in err


# Finding 6 (#21) ---------------------------------------------------------------------------------
def test_a_model_that_takes_no_hints_ignores_an_rgb_hint_with_one_warning(models, tmp_path, capsys):
    path = sketch(tmp_path / "box.png")
    rgb = tmp_path / "hint.jpg"
    cv2.imwrite(str(rgb), np.full((48, 80, 3), 200, np.uint8))  # no alpha: unusable as a hint, but never read
    for hints in (rgb, "histogram-guess"):  # the dataset has no colour histogram: nothing to guess from, nor needed
        out = tmp_path / f"out-{Path(str(hints)).stem}"
        code, err = run(capsys, path, "--draft", models["xu2020"], "--hints", hints, "-o", out)
        assert code == 0, err
        assert err.count("warning:") == 1 and "warning: --hints ignored: xu2020 draft takes no hints (its inputs: line)" in err
        assert "error" not in err and cv2.imread(str(out / "box.png")).shape == (48, 80, 3)


# Finding 7 (#28) ---------------------------------------------------------------------------------
def test_unreadable_sketches_are_skipped_counted_and_named(models, tmp_path, capsys):
    folder = tmp_path / "sketches"
    sketch(folder / "box.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "empty.jpg").write_bytes(b"")
    sketch(folder / "zebra.png", 64, 48)
    code, err = run(capsys, folder, "--draft", models["xu2020"], "-o", tmp_path / "out")
    assert code == 0, err
    assert "skipped 2 of 4:" in err and "coloured 2 of 4 sketches" in err
    assert f"{folder / 'broken.png'}: not an image OpenCV can decode" in err and f"{folder / 'empty.jpg'}: not an image OpenCV can decode" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["box.png", "zebra.png"]
    (folder / "box.png").write_bytes(b"")
    (folder / "zebra.png").write_bytes(b"GIF89a")
    capsys.readouterr()
    assert main(["colorize", str(folder), "--draft", str(models["xu2020"]), "-o", str(tmp_path / "none"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "skipped 4 of 4:" in err and err.strip().splitlines()[-1] == "error: none of the 4 sketches could be coloured (each skipped above with its reason)"
