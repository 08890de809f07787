"""`pipe eval`: tiny CPU checkpoints scored on a val split, the report's numbers, HTML and comparison."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import tarfile

import cv2
import numpy as np
import pytest
import torch

from extractors.weights import SOURCES, WEIGHTS_ENV
from pipeline.cli import main
from synth.hints.cfid import SEGMENT_COUNTS
from tests.helpers import make_sharded_dataset
from pipeline.eval.hints import eval_hints
from pipeline.eval.samples import Unscored, batch_reporting_unscored, split_keys
from tests.stand_ins.inception import stand_in_state_dict

SIZE = 64
INCEPTION_FILE = SOURCES["inception"].file_name


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> dict:
    """A dataset with a val split, a 3-step draft (xu2020) and refinement (cheng2018) run, and stand-in FID Inception weights."""
    base = tmp_path_factory.mktemp("eval")
    root = base / "root"
    make_sharded_dataset(root, 24, SIZE, "--hints", "patches", "--val", "0.3", "--shard-samples", "4")
    checkpoints = {}
    for recipe, stage in (("xu2020", "draft"), ("cheng2018", "refine")):
        args = ["train", stage, str(root), "--recipe", recipe, "--steps", "3", "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25", "--name", stage]
        assert main(args) == 0
        checkpoints[stage] = root / "runs" / stage / "checkpoints" / "last.pt"
    weights = base / "weights"
    weights.mkdir()
    torch.save(stand_in_state_dict(seed=0), weights / INCEPTION_FILE)
    val = sum(json.loads(p.read_text())["count"] for p in (root / "shards" / "val").glob("*_stats.json"))
    return {"root": root, "weights": weights, "val": val, **checkpoints}


def eval_args(scored: dict, *extra: str, workers: int = 0) -> list[str]:
    return ["eval", str(scored["root"]), "--draft", str(scored["draft"]), "--weights-dir", str(scored["weights"]), "--device", "cpu", "--kid-subsets", "20", "--workers", str(workers), *extra]


@pytest.fixture(scope="module")
def report(scored) -> dict:
    args = eval_args(scored, "--refine", str(scored["refine"]), "--hints", "none,cfid,shard", "--grid", "3", "--name", "both")
    assert main(args) == 0
    folder = scored["root"] / "reports" / "both"
    return {"folder": folder, "json": json.loads((folder / "report.json").read_text())}


def test_report_scores_every_val_sample_under_each_setting(scored, report):
    numbers = report["json"]
    assert 4 <= scored["val"] == numbers["samples"]
    assert list(numbers["settings"]) == ["none", "cfid", "shard"]
    assert [numbers["settings"][s]["label"] for s in ("none", "cfid")] == ["FID", "C-FID"]
    for setting, entry in numbers["settings"].items():
        assert entry["samples"] == scored["val"]
        assert entry["fid"] > 0 and np.isfinite(entry["fid"])
        assert entry["kid"]["subsets"] == 20 and entry["kid"]["subset_size"] == scored["val"]
        assert entry["psnr"]["count"] == entry["ssim"]["count"] == scored["val"]
        assert 0 < entry["psnr"]["mean"] < 60 and -1 <= entry["ssim"]["mean"] <= 1
        if setting == "none":
            assert "adherence" not in entry and "containment" not in entry
        else:
            assert entry["adherence"]["count"] > 0 and entry["adherence"]["mean"] >= 0
            contained = entry["containment"]
            assert contained["count"] + contained["absent"] > 0
    # 28 C-FID pixels per image, each scored for adherence.
    assert numbers["settings"]["cfid"]["adherence"]["count"] == sum(SEGMENT_COUNTS) * scored["val"]
    config = numbers["config"]
    assert config["draft"]["recipe"] == "xu2020" and config["refine"]["recipe"] == "cheng2018" and config["draft"]["step"] == 3


def test_scores_repeat_exactly_with_cached_truths_and_cfid_hints_do_not_depend_on_the_seed(scored, report, tmp_path):
    args = eval_args(scored, "--refine", str(scored["refine"]), "--hints", "none,cfid,shard", "--grid", "3", "--out", str(tmp_path / "again"))
    assert main(args) == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["settings"] == report["json"]["settings"]
    # The truths' features were computed once and cached for the second run.
    assert (report["json"]["config"]["truth_features"], again["config"]["truth_features"]) == ("computed", "cached")
    assert len(list((scored["root"] / "reports" / ".cache").glob("val-truth-features-*.npy"))) == 1
    colors = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 3, SIZE, SIZE), dtype=np.uint8))
    first, other = eval_hints("cfid", colors, ["a", "b"], None, seed=0), eval_hints("cfid", colors, ["a", "b"], None, seed=9)
    assert torch.equal(first, other)
    assert ((first[:, 3] > 0).sum(dim=(1, 2)) == sum(SEGMENT_COUNTS)).all()
    assert not torch.equal(eval_hints("points", colors, ["a", "b"], None, seed=0), eval_hints("points", colors, ["a", "b"], None, seed=9))


def numbers_of(tree) -> list[float]:
    """Every number in a report section, in a fixed order."""
    if isinstance(tree, dict):
        return [n for key in sorted(tree) for n in numbers_of(tree[key])]
    if isinstance(tree, list):
        return [n for item in tree for n in numbers_of(item)]
    return [float(tree)] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


@pytest.mark.slow
def test_scores_do_not_depend_on_loader_workers_and_limit_keeps_the_first_samples(scored, tmp_path):
    keys = split_keys(scored["root"] / "shards" / "val")
    assert len(keys) == len(set(keys)) == scored["val"]
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"workers-{workers}"
        # With the refinement (it reads hints): the draft alone takes none, and gets no hint scores.
        args = ["--refine", str(scored["refine"]), "--hints", "none,cfid", "--limit", "5", "--kid-subset-size", "3", "--batch-size", "2", "--grid", "3"]
        assert main(eval_args(scored, *args, "--out", str(out), workers=workers)) == 0
        report = json.loads((out / "report.json").read_text())
        html = (out / "report.html").read_text()
        runs[workers] = (report, re.findall(r'<tr><td title="([^"]+)">', html))
    (serial, serial_grid), (pooled, pooled_grid) = runs[0], runs[2]
    assert serial["samples"] == pooled["samples"] == 5
    # The grid shows the split's first samples whichever worker decoded them.
    assert serial_grid == pooled_grid == keys[:3] * 2
    # Two workers batch the samples differently (positions 0, 2 | 4 and 1, 3), so the scores agree to
    # float32 round-off and every count exactly. KID draws subsets of 3 by position: it would differ
    # if the features were reduced in arrival order.
    assert numbers_of(pooled["settings"]) == pytest.approx(numbers_of(serial["settings"]), rel=1e-5, abs=1e-6)
    assert pooled["settings"]["cfid"]["adherence"]["count"] == sum(SEGMENT_COUNTS) * 5


def test_compare_prints_both_reports_side_by_side(scored, report, capsys):
    assert main(eval_args(scored, "--hints", "cfid", "--name", "draft-only", "--no-fid")) == 0
    draft_only = scored["root"] / "reports" / "draft-only" / "report.json"
    numbers = json.loads(draft_only.read_text())
    cfid = numbers["settings"]["cfid"]
    assert cfid["fid"] is None and cfid["not_computed"]["fid"] == "--no-fid" and cfid["psnr"]["count"] == scored["val"]
    capsys.readouterr()
    assert main(["eval", "--compare", str(report["folder"] / "report.json"), str(draft_only)]) == 0
    out = capsys.readouterr().err
    assert "both (a) vs draft-only (b)" in out
    for metric in ("C-FID", "PSNR", "SSIM", "hint error", "containment"):
        assert metric in out
    assert "in one report only: none, shard" in out.replace("\n", " ")


def test_eval_errors_are_one_line(scored, tmp_path, capsys):
    capsys.readouterr()
    assert main(eval_args(scored, "--weights-dir", str(tmp_path), "--hints", "none")) == 2
    err = capsys.readouterr().err
    assert INCEPTION_FILE in err and "pytorch-fid" in err and len(err.strip().splitlines()) == 1
    assert main(eval_args(scored, "--hints", "sparkles")) == 2
    assert "unknown hint setting sparkles" in capsys.readouterr().err
    assert main(eval_args(scored, "--split", "test")) == 2
    assert "--split 'test': pipe shard makes the splits train and val" in capsys.readouterr().err
    assert main(["eval", str(scored["root"]), "--draft", str(scored["refine"]), "--no-fid"]) == 2
    assert "is a refine checkpoint (cheng2018 refine): pass it as --refine" in capsys.readouterr().err
    assert main(["eval", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 2
    assert "a.json not found" in capsys.readouterr().err


def test_report_html_holds_every_table_and_image(report):
    page = (report["folder"] / "report.html").read_text()
    for table in ("distribution", "per-image", "config", "grid-none", "grid-cfid", "grid-shard"):
        assert f'id="{table}"' in page
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 3 * 3 * 4  # 3 settings x 3 samples x (sketch, hints, output, truth)
    for chunk in images:
        decoded = cv2.imdecode(np.frombuffer(base64.b64decode(chunk.split('"', 1)[0]), np.uint8), cv2.IMREAD_UNCHANGED)
        assert decoded is not None and decoded.shape[0] == SIZE


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium to render the report with")
def test_report_renders_in_headless_chromium(report, tmp_path):
    html = report["folder"] / "report.html"
    # The background-networking flags keep Chromium from calling out at start: the page is a local file.
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*command, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    assert dom.count("<table") == 6 and dom.count("<img") == 36
    shot = tmp_path / "shot.png"
    subprocess.run([*command, "--window-size=1000,3000", f"--screenshot={shot}", html.as_uri()], capture_output=True, timeout=120, check=True)
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[:2] == (3000, 1000)
    # The grids render: the page is far from blank and shows colour (hints, outputs and truths).
    chroma = picture.max(axis=2).astype(int) - picture.min(axis=2)
    assert (picture < 200).any(axis=2).mean() > 0.05 and (chroma > 60).mean() > 0.01


def replace_member(tar_path, member_name: str, data: bytes | None) -> None:
    """Rewrite a shard tar in place with one member's bytes replaced (None: the member left out), every other member as it was."""
    with tarfile.open(tar_path) as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]
    assert member_name in [info.name for info, _ in members]
    with tarfile.open(tar_path, "w") as tar:
        for info, content in members:
            if info.name == member_name:
                if data is None:
                    continue
                content = data
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


DIGEST_DETAIL = "color.png: differs from the SHA-256 recorded in 00000.parquet (damaged shard)"


@pytest.fixture
def damaged_split(scored, tmp_path) -> dict:
    """A copy of the split whose second val sample has garbage for color.png; the sidecars are untouched."""
    root = tmp_path / "root"
    shutil.copytree(scored["root"] / "shards", root / "shards")
    keys = split_keys(root / "shards" / "val")
    shard = sorted((root / "shards" / "val").glob("*.tar"))[0]
    replace_member(shard, f"{keys[1]}.color.png", b"not a png" * 7)
    return {**scored, "root": root, "keys": keys}


@pytest.mark.slow
def test_an_undecodable_sample_is_named_unscored_whatever_the_loader_workers(damaged_split, tmp_path, capsys):
    runs = {}
    for workers in (0, 2):
        out = tmp_path / f"workers-{workers}"
        capsys.readouterr()
        assert main(eval_args(damaged_split, "--hints", "none,cfid", "--batch-size", "2", "--grid", "3", "--out", str(out), workers=workers)) == 0
        report = json.loads((out / "report.json").read_text())
        runs[workers] = report
        assert report["split_samples"] == damaged_split["val"] and report["samples"] == report["split_samples"] - 1
        assert report["unscored"]["count"] == 1
        (unscored,) = report["unscored"]["samples"]
        assert (unscored["key"], unscored["reason"]) == (damaged_split["keys"][1], "decode_error")
        # The garbage is caught by the member's recorded digest, before it is decoded.
        assert unscored["detail"] == DIGEST_DETAIL
        for entry in report["settings"].values():
            assert entry["samples"] == entry["psnr"]["count"] == entry["kid"]["subset_size"] == report["samples"]
        page = (out / "report.html").read_text()
        assert 'id="unscored"' in page and damaged_split["keys"][1] in page
        printed = " ".join(capsys.readouterr().err.split())
        assert f"{report['samples']} of {report['split_samples']} samples scored, 1 unscored" in printed and f"unscored {damaged_split['keys'][1]}: decode_error ({DIGEST_DETAIL})" in printed
    assert runs[0]["unscored"] == runs[2]["unscored"]
    assert numbers_of(runs[2]["settings"]) == pytest.approx(numbers_of(runs[0]["settings"]), rel=1e-5, abs=1e-6)
    # Older reports have neither field (nor a digest): the comparison still reads them, and notes the damaged run's count.
    older = {key: value for key, value in runs[0].items() if key not in ("split_samples", "unscored", "_digest")}
    (tmp_path / "older.json").write_text(json.dumps(older))
    assert main(["eval", "--compare", str(tmp_path / "older.json"), str(tmp_path / "workers-2" / "report.json")]) == 0
    assert f"b: {runs[2]['samples']} of {runs[2]['split_samples']} samples scored, 1 unscored" in " ".join(capsys.readouterr().err.split())


def test_a_sidecar_key_the_tar_lacks_is_named_missing_from_shard(damaged_split, tmp_path):
    keys = damaged_split["keys"]
    shard = sorted((damaged_split["root"] / "shards" / "val").glob("*.tar"))[-1]
    with tarfile.open(shard) as tar:
        last = tar.getnames()[-1].split(".", 1)[0]
    with tarfile.open(shard) as tar:
        names = tar.getnames()
    for member in [name for name in names if name.startswith(f"{last}.")]:
        replace_member(shard, member, None)
    out = tmp_path / "report"
    assert main(eval_args(damaged_split, "--hints", "none", "--no-fid", "--out", str(out))) == 0
    report = json.loads((out / "report.json").read_text())
    assert [(s["key"], s["reason"]) for s in report["unscored"]["samples"]] == [(keys[1], "decode_error"), (last, "missing_from_shard")]
    assert keys.index(last) == len(keys) - 1 and report["samples"] == report["split_samples"] - 2 == len(keys) - 2


def test_loader_batches_carry_unscored_records_and_batch_the_decoded_samples_as_before():
    decoded = [{"__key__": key, "color": np.full((3, 2, 2), i, np.uint8)} for i, key in enumerate("abc")]
    first, last = Unscored("x", "decode_error", "color.png: does not decode"), Unscored("y", "missing_member", "line.png not in the shard")
    batches = list(batch_reporting_unscored([decoded[0], first, decoded[1], decoded[2], last], batch_size=3))
    assert [(batch["__key__"], batch["unscored"]) for batch in batches] == [(["a", "b", "c"], [first]), ([], [last])]
    assert batches[0]["color"].shape == (3, 3, 2, 2)


@pytest.mark.slow
def test_eval_killed_with_sigkill_leaves_no_report_and_a_rerun_scores_everything(scored):
    import os
    import signal
    import sys
    import time

    name = "killed"
    command = [sys.executable, "-m", "pipeline.cli", *eval_args(scored, "--hints", "none,cfid,shard,points,patches,blur", "--batch-size", "1", "--name", name)]
    lock = scored["root"] / ".pipe" / "locks" / f"eval-{name}.lock"
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not lock.exists() and process.poll() is None:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    folder = scored["root"] / "reports" / name
    assert lock.exists() and not (folder / "report.json").exists(), "eval finished before it could be killed"
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((folder / "report.json").read_text())
    assert report["samples"] == report["split_samples"] == scored["val"] and report["unscored"]["count"] == 0
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]
    assert not (scored["root"] / ".pipe" / "tmp" / f"eval-{name}").exists()


def test_without_the_default_inception_file_fid_is_na_and_every_other_score_is_computed(scored, tmp_path, monkeypatch, capsys):
    """The default weights folder lacks the file: FID, KID and C-FID are null with the reason, one
    warning line says so, and PSNR, SSIM and the hint scores are all there (an explicitly given
    --weights-dir without the file stays an error: test_eval_errors_are_one_line)."""
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "no-weights"))
    capsys.readouterr()
    out = tmp_path / "report"
    args = ["eval", str(scored["root"]), "--draft", str(scored["draft"]), "--refine", str(scored["refine"]), "--device", "cpu", "--workers", "0",
            "--hints", "none,cfid", "--grid", "1", "--out", str(out)]
    assert main(args) == 0
    err = capsys.readouterr().err
    reason = f"{INCEPTION_FILE} missing, `pipe weights fetch inception`"
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "FID, KID and C-FID not computed" in warnings[0] and reason in warnings[0]
    numbers = json.loads((out / "report.json").read_text())
    for setting in ("none", "cfid"):
        entry = numbers["settings"][setting]
        assert entry["fid"] is None and entry["kid"] is None
        assert entry["not_computed"] == {"fid": reason, "kid": reason}
        assert entry["psnr"]["count"] == entry["ssim"]["count"] == scored["val"]
    assert numbers["settings"]["cfid"]["adherence"]["count"] == sum(SEGMENT_COUNTS) * scored["val"]
    assert numbers["feature_dim"] is None and numbers["config"]["truth_features"] is None
    assert f"n/a: {reason}" in (out / "report.html").read_text()


def test_fid_impl_is_threaded_through_and_reported(scored, report, tmp_path, capsys):
    capsys.readouterr()
    out = tmp_path / "pytorch-fid"
    assert main(eval_args(scored, "--refine", str(scored["refine"]), "--hints", "none", "--grid", "1", "--fid-impl", "pytorch-fid", "--out", str(out))) == 0
    printed = capsys.readouterr().err
    numbers = json.loads((out / "report.json").read_text())
    assert numbers["config"]["fid_impl"] == "pytorch-fid" and numbers["config"]["resize"].startswith("x / 255, torch bilinear interpolate")
    assert report["json"]["config"]["fid_impl"] == "tf"
    assert "FID features: --fid-impl pytorch-fid" in printed.replace("\n", " ")
    assert "FID features: --fid-impl pytorch-fid" in (out / "report.html").read_text()
    # Other features, so another truth cache entry and another value; the per-image scores do not change.
    assert numbers["config"]["truth_features"] == "computed"
    assert numbers["settings"]["none"]["fid"] != pytest.approx(report["json"]["settings"]["none"]["fid"], rel=1e-6)
    assert numbers_of(numbers["settings"]["none"]["psnr"]) == pytest.approx(numbers_of(report["json"]["settings"]["none"]["psnr"]), rel=1e-5)
    capsys.readouterr()
    assert main(["eval", "--compare", str(report["folder"] / "report.json"), str(out / "report.json")]) == 0
    assert "FID implementations differ (a: tf, b: pytorch-fid)" in capsys.readouterr().err.replace("\n", " ")
    assert main(eval_args(scored, "--fid-impl", "tensorflow")) == 2
    assert "--fid-impl must be one of: tf, pytorch-fid, clean" in capsys.readouterr().err


def one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return " ".join(err.split())


def test_eval_never_replaces_a_report_without_overwrite(scored, tmp_path, capsys):
    """Finding #7: the default name is numbered when taken; an explicit --name or --out that holds a
    report is refused in one line (before anything is scored) unless --overwrite."""
    reports = scored["root"] / "reports"
    quick = eval_args(scored, "--hints", "none", "--no-fid", "--grid", "1")
    assert main(quick) == 0
    first = (reports / "draft-val" / "report.json").read_bytes()
    capsys.readouterr()
    assert main(quick) == 0
    assert "note: report draft-val exists (kept): this one is draft-val-2" in " ".join(capsys.readouterr().err.split())
    assert (reports / "draft-val" / "report.json").read_bytes() == first
    assert json.loads((reports / "draft-val-2" / "report.json").read_text())["name"] == "draft-val-2"
    err = one_line_error(capsys, [*quick, "--name", "draft-val"])
    assert f"{reports / 'draft-val'} already holds a report: pass --overwrite to replace it, or give another --name NAME" in err
    assert one_line_error(capsys, [*quick, "--out", str(reports / "draft-val-2")]).endswith("or give another --out FOLDER")
    assert (reports / "draft-val" / "report.json").read_bytes() == first
    assert main([*quick, "--name", "draft-val", "--overwrite", "--hints", "cfid"]) == 0
    assert list(json.loads((reports / "draft-val" / "report.json").read_text())["settings"]) == ["cfid"]
    for name in ("draft-val", "draft-val-2"):
        shutil.rmtree(reports / name)


def flip_a_digit(path) -> bytes:
    """Flip the lowest bit of the report's last digit: still valid JSON, another number."""
    original = path.read_bytes()
    index = max(i for i, byte in enumerate(original) if chr(byte).isdigit() and i < original.index(b'"_digest"'))
    flipped = bytearray(original)
    flipped[index] ^= 1
    path.write_bytes(bytes(flipped))
    return original


def test_a_flipped_bit_in_a_report_is_named_by_every_command_that_reads_it(scored, report, capsys):
    """Round 2, finding 10: report.json carries a `_digest`; `pipe eval --compare` refuses a damaged
    one in one line, `pipe status` shows it as damaged instead of its numbers, `pipe verify` names it."""
    folder = scored["root"] / "reports" / "flipped"
    shutil.copytree(report["folder"], folder)
    path = folder / "report.json"
    assert json.loads(path.read_text())["_digest"].startswith("sha256:")
    try:
        assert main(["eval", "--compare", str(path), str(report["folder"] / "report.json")]) == 0
        flip_a_digit(path)
        err = one_line_error(capsys, ["eval", "--compare", str(path), str(report["folder"] / "report.json")])
        assert f"error: {path} is damaged (its content does not match its digest)" in err
        capsys.readouterr()
        main(["status", str(scored["root"])])
        shown = capsys.readouterr()
        status_lines = [line for line in (shown.out + shown.err).splitlines() if "flipped" in line]
        assert len(status_lines) == 1 and "damaged" in status_lines[0], shown
        assert main(["verify", str(scored["root"])]) == 1
        assert any(line.startswith("damaged:") and "flipped" in line for line in capsys.readouterr().err.splitlines())
    finally:
        shutil.rmtree(folder)
