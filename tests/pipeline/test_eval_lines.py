"""`pipe eval --lines`, `--repeats` and the `histogram-guess` hints: line sources side by side in one
report, samples without a source's lines named `no_lines`, spreads over re-drawn hints, and hints
guessed from a colour histogram instead of the truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from extractors.weights import SOURCES
from manifests.layout import DatasetLayout
from manifests.ledger import Ledger
from manifests.schema import LINES
from manifests.shards import split_keys
from pipeline.cli import main
from pipeline.eval.hints import eval_hints
from synth.common import bin_color, quantized_bins
from synth.guess import histogram_of
from tests.helpers import make_sharded_dataset
from tests.stand_ins.inception import stand_in_state_dict

SIZE = 64
NO_REAL = 2  # the first val samples get no real line
HINTS_A = "none,cfid,points,histogram-guess"


def write_real_lines(root: Path, keys: list[str]) -> None:
    """Line drawings of `keys` as `pipe import pairs` leaves them (lines/real/ab/<key>.png and ok
    `real/<key>` rows of lines.parquet): thin edges of the colour image, unlike its XDoG lines."""
    layout = DatasetLayout(root)
    rows = []
    for key in keys:
        grey = cv2.cvtColor(cv2.imread(str(layout.sample("prepared", key, "png"))), cv2.COLOR_BGR2GRAY)
        line = 255 - cv2.Canny(grey, 50, 150)
        path = layout.line_art("real", key)
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), line)
        rows.append({"line": f"real/{key}", "key": key, "status": "ok", "method": "real", "path": layout.relative(path), "width": SIZE, "height": SIZE})
    ledger = Ledger(root, LINES)
    ledger.append(rows)
    ledger.compact()


@pytest.fixture(scope="module")
def lined(tmp_path_factory) -> dict:
    """Histogram-hinted shards (so shards/_histogram.npy exists) with xdog lines, real lines for all
    but the first NO_REAL val samples, a 3-step xu2020 draft and cheng2018 refinement (it reads hints)."""
    base = tmp_path_factory.mktemp("eval-lines")
    root = base / "root"
    make_sharded_dataset(root, 16, SIZE, "--hints", "histogram", "--val", "0.5", "--shard-samples", "4")
    checkpoints = {}
    for recipe, stage in (("xu2020", "draft"), ("cheng2018", "refine")):
        args = ["train", stage, str(root), "--recipe", recipe, "--steps", "3", "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25", "--name", stage]
        assert main(args) == 0
        checkpoints[stage] = root / "runs" / stage / "checkpoints" / "last.pt"
    keys = split_keys(root / "shards" / "val")
    assert len(keys) >= NO_REAL + 3
    write_real_lines(root, keys[NO_REAL:])
    return {"root": root, "keys": keys, "base": base, **checkpoints}


def eval_args(lined: dict, *extra: str) -> list[str]:
    return ["eval", str(lined["root"]), "--draft", str(lined["draft"]), "--refine", str(lined["refine"]), "--device", "cpu", "--workers", "0", *extra]


def run_report(lined: dict, name: str, *extra: str) -> dict:
    out = lined["base"] / name
    assert main(eval_args(lined, *extra, "--name", name, "--out", str(out))) == 0
    return {"json": json.loads((out / "report.json").read_text()), "html": (out / "report.html").read_text(), "folder": out}


@pytest.fixture(scope="module")
def side_by_side(lined) -> dict:
    return run_report(lined, "side-by-side", "--lines", "real,xdog", "--hints", HINTS_A, "--repeats", "2", "--no-fid", "--grid", "2")


def test_each_line_source_is_scored_on_its_own_samples_side_by_side(lined, side_by_side):
    report, keys = side_by_side["json"], lined["keys"]
    assert list(report["lines"]) == ["real", "xdog"] and report["config"]["lines"] == ["real", "xdog"]
    real, xdog = report["lines"]["real"], report["lines"]["xdog"]
    assert report["samples"] == xdog["samples"] == len(keys) and real["samples"] == len(keys) - NO_REAL
    assert report["unscored"]["count"] == 0 and xdog["unscored"]["count"] == 0
    assert [(s["key"], s["reason"]) for s in real["unscored"]["samples"]] == [(key, "no_lines") for key in keys[:NO_REAL]]
    for source, section in report["lines"].items():
        assert list(section["settings"]) == HINTS_A.split(",")
        for entry in section["settings"].values():
            assert entry["samples"] == entry["psnr"]["count"] == section["samples"]
    # The same checkpoints and hints on other lines: other outputs, other scores.
    assert real["settings"]["none"]["psnr"]["mean"] != pytest.approx(xdog["settings"]["none"]["psnr"]["mean"], rel=1e-6)
    assert real["settings"]["cfid"]["ssim"]["mean"] != pytest.approx(xdog["settings"]["cfid"]["ssim"]["mean"], rel=1e-6)
    # Readers of single-source reports find the first source's settings where they always were.
    assert report["settings"] == real["settings"]


def test_report_html_shows_the_sources_side_by_side_and_names_the_samples_without_lines(lined, side_by_side):
    page = side_by_side["html"]
    for table in ("lines", "unscored-lines-real", "distribution-real", "distribution-xdog", "per-image-real", "per-image-xdog", "grid-real-none", "grid-xdog-histogram-guess"):
        assert f'id="{table}"' in page
    assert 'id="unscored-lines-xdog"' not in page
    for key in lined["keys"][:NO_REAL]:
        assert key in page
    # Each source's grid shows the split's first samples that have its lines.
    grid = page.split('id="grid-real-none"')[1].split("</table>")[0]
    assert [key for key in lined["keys"] if f'title="{key}"' in grid] == lined["keys"][NO_REAL : NO_REAL + 2]
    side = page.split('id="lines"')[1].split("</table>")[0]
    assert "<th>real</th><th>xdog</th>" in side and "samples scored" in side


def test_repeats_spread_is_zero_for_fixed_hints_and_positive_for_drawn_ones(side_by_side):
    report = side_by_side["json"]
    assert report["repeats"] == report["config"]["repeats"] == 2
    for source, section in report["lines"].items():
        settings = section["settings"]
        for setting in ("none", "cfid"):
            entry = settings[setting]
            assert entry["repeats"] == 2 and len(entry["per_repeat"]["psnr"]) == 2
            assert entry["spread"]["psnr"]["mean"] == 0 and entry["spread"]["ssim"]["mean"] == 0
            assert entry["per_repeat"]["psnr"][0] == entry["per_repeat"]["psnr"][1]
        assert settings["cfid"]["spread"]["adherence"]["mean"] == 0 and settings["cfid"]["spread"]["adherence"]["count"] == 0
        for setting in ("points", "histogram-guess"):
            entry = settings[setting]
            assert entry["spread"]["psnr"]["mean"] > 0 and entry["spread"]["adherence"]["mean"] > 0, (source, setting)
            assert entry["psnr"]["mean"] == pytest.approx(np.mean(entry["per_repeat"]["psnr"]), rel=1e-12)
            assert entry["spread"]["psnr"]["mean"] == pytest.approx(np.std(entry["per_repeat"]["psnr"], ddof=1), rel=1e-9)


def test_the_first_repeat_is_the_single_run_and_guessed_hints_are_far_from_the_truth(lined, side_by_side, capsys):
    single = run_report(lined, "single", "--lines", "xdog", "--hints", "points,patches,histogram-guess", "--no-fid", "--grid", "0")["json"]
    settings = single["settings"]
    assert single["repeats"] == 1 and "spread" not in settings["points"] and "per_repeat" not in settings["points"]
    repeated = side_by_side["json"]["lines"]["xdog"]["settings"]
    for setting in ("points", "histogram-guess"):
        assert repeated[setting]["per_repeat"]["psnr"][0] == pytest.approx(settings[setting]["psnr"]["mean"], rel=1e-6)
        assert repeated[setting]["per_repeat"]["adherence"][0] == pytest.approx(settings[setting]["adherence"]["mean"], rel=1e-6)
    # Patches copy the truth's colours: the truth sits close to them. Guessed colours do not come from it.
    assert settings["histogram-guess"]["adherence"]["truth_mean"] > 2 * settings["patches"]["adherence"]["truth_mean"]
    assert single["config"]["guess_histogram"] == "dataset histogram shards/_histogram.npy"
    capsys.readouterr()
    assert main(["eval", "--compare", str(side_by_side["folder"] / "report.json"), str(lined["base"] / "single" / "report.json")]) == 0
    out = " ".join(capsys.readouterr().err.split())
    assert "side-by-side (a) vs single (b)" in out and "in one report only: real/cfid, real/histogram-guess, real/none, real/points, xdog/cfid, xdog/none, xdog/patches" in out


@pytest.mark.slow
def test_fid_per_line_source_uses_the_truths_of_its_own_samples(lined, tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(stand_in_state_dict(seed=0), weights / SOURCES["inception"].file_name)
    report = run_report(lined, "fid", "--lines", "real,xdog", "--hints", "none", "--grid", "1", "--weights-dir", str(weights), "--kid-subsets", "5")["json"]
    real, xdog = (report["lines"][source]["settings"]["none"] for source in ("real", "xdog"))
    assert real["kid"]["subset_size"] == len(lined["keys"]) - NO_REAL and xdog["kid"]["subset_size"] == len(lined["keys"])
    assert np.isfinite(real["fid"]) and np.isfinite(xdog["fid"]) and real["fid"] != pytest.approx(xdog["fid"], rel=1e-6)


def test_histogram_guess_from_a_reference_image(lined, tmp_path):
    reference = np.zeros((40, 40, 3), np.uint8)
    reference[:, :25] = (200, 30, 40)
    reference[:, 25:] = (20, 90, 220)
    cv2.imwrite(str(tmp_path / "reference.png"), cv2.cvtColor(reference, cv2.COLOR_RGB2BGR))
    report = run_report(lined, "reference", "--lines", "xdog", "--hints", "histogram-guess", "--reference", str(tmp_path / "reference.png"), "--no-fid", "--grid", "1")
    assert report["json"]["config"]["guess_histogram"] == "reference image reference.png"
    assert report["json"]["settings"]["histogram-guess"]["adherence"]["count"] > 0


def test_guessed_hints_take_the_references_colours_never_the_truths():
    rng = np.random.default_rng(3)
    truth = torch.from_numpy(rng.integers(0, 100, (4, 3, SIZE, SIZE), dtype=np.uint8))  # dark colours only
    reference = torch.zeros((3, 48, 48), dtype=torch.uint8)
    reference[:, :24] = torch.tensor([250, 250, 250], dtype=torch.uint8)[:, None, None]
    reference[:, 24:40] = torch.tensor([230, 140, 30], dtype=torch.uint8)[:, None, None]
    reference[:, 40:] = torch.tensor([120, 200, 160], dtype=torch.uint8)[:, None, None]
    histogram = histogram_of(reference).numpy()
    keys = [f"k{i}" for i in range(4)]
    guessed = eval_hints("histogram-guess", truth, keys, None, seed=1, guess_histogram=histogram)
    given = guessed[:, 3] > 0
    assert given.any(axis=(1, 2)).all()
    colours = {tuple(c) for c in guessed[:, :3].permute(0, 2, 3, 1)[given].tolist()}
    assert colours <= {tuple(bin_color(b)) for b in np.flatnonzero(histogram)}
    assert not colours & {tuple(bin_color(b)) for b in quantized_bins(truth).unique().tolist()}
    # The truth is never looked at: other images with the same keys get the same hints; another repeat, others.
    assert torch.equal(guessed, eval_hints("histogram-guess", 255 - truth, keys, None, seed=1, guess_histogram=histogram))
    assert not torch.equal(guessed, eval_hints("histogram-guess", truth, keys, None, seed=1, repeat=1, guess_histogram=histogram))
    # Truth-drawn schemes follow the truth (and cfid ignores the seed and the repeat).
    assert torch.equal(eval_hints("cfid", truth, keys, None, seed=0), eval_hints("cfid", truth, keys, None, seed=5, repeat=3))
    assert not torch.equal(eval_hints("points", truth, keys, None, seed=0), eval_hints("points", truth, keys, None, seed=0, repeat=1))


def test_eval_line_and_repeat_errors_are_one_line(lined, tmp_path, capsys):
    cases = [
        (["--lines", "sparkle"], "unknown line source sparkle; choose from shard, real, xdog"),
        (["--lines", "real,canny"], "--lines canny: no canny line art in"),
        (["--repeats", "0"], "--repeats must be at least 1, got 0"),
        (["--reference", str(tmp_path / "none.png")], "--reference is the image --hints histogram-guess guesses from"),
        (["--hints", "histogram-guess", "--reference", str(tmp_path / "none.png")], "none.png: no such file"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        assert main(eval_args(lined, "--no-fid", *extra)) == 2, extra
        err = capsys.readouterr().err
        assert message in " ".join(err.split()) and len(err.strip().splitlines()) == 1, err
    # Without the dataset histogram (shards made without histogram hints), histogram-guess says where to get one.
    bare = tmp_path / "bare"
    shutil.copytree(lined["root"] / "shards", bare / "shards")
    (bare / "shards" / "_histogram.npy").unlink()
    capsys.readouterr()
    assert main(["eval", str(bare), "--draft", str(lined["draft"]), "--hints", "histogram-guess", "--no-fid", "--device", "cpu", "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "shard with `--hints histogram`" in err and "--reference IMAGE" in err and len(err.strip().splitlines()) == 1


def test_colorize_with_guessed_hints_from_a_reference_or_the_dataset(lined, tmp_path, capsys):
    sketch = np.full((70, 90), 255, np.uint8)
    cv2.rectangle(sketch, (10, 10), (60, 50), 0, 2)
    cv2.imwrite(str(tmp_path / "sketch.png"), sketch)
    reference = np.zeros((40, 40, 3), np.uint8)
    reference[:, :25] = (200, 30, 40)
    reference[:, 25:] = (20, 90, 220)
    cv2.imwrite(str(tmp_path / "reference.png"), cv2.cvtColor(reference, cv2.COLOR_RGB2BGR))
    base = ["colorize", str(tmp_path / "sketch.png"), "--draft", str(lined["draft"]), "--refine", str(lined["refine"]), "--device", "cpu"]

    def colour(name: str, *extra: str) -> np.ndarray:
        assert main([*base, "-o", str(tmp_path / name), *extra]) == 0
        image = cv2.imread(str(tmp_path / name / "sketch.png"))
        assert image.shape[:2] == (70, 90)
        return image

    plain = colour("plain")
    guessed = colour("guessed", "--hints", "histogram-guess", "--reference", str(tmp_path / "reference.png"))
    assert np.array_equal(guessed, colour("again", "--hints", "histogram-guess", "--reference", str(tmp_path / "reference.png")))  # seeded
    assert not np.array_equal(guessed, plain)  # the refinement reads the guessed hints
    assert not np.array_equal(guessed, colour("seed1", "--hints", "histogram-guess", "--reference", str(tmp_path / "reference.png"), "--seed", "1"))
    colour("dataset", "--hints", "histogram-guess")  # the checkpoint's ROOT has shards/_histogram.npy
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "bad"), "--reference", str(tmp_path / "reference.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--reference goes with --hints histogram-guess" in err
