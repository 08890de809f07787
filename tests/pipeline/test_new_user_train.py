"""What a new user meets in `pipe train`, `pipe colorize` and `pipe eval`: one-line errors naming the
option or file, refusals instead of silent overwrites, warnings where an option has no effect, and
scores marked n/a with the reason instead of an error or a meaningless number."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from extractors.weights import SOURCES
from pipeline.cli import main
from tests.helpers import make_prepared_dataset
from tests.stand_ins.inception import stand_in_state_dict

SIZE = 64
COMMON = ["--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A dataset with a val split and 3-step runs: xu2020 draft (takes no hints), cheng2018 refine
    (takes hints) and lee2020's LDM; stand-in FID Inception weights."""
    base = tmp_path_factory.mktemp("new-user")
    root = base / "root"
    weights = base / "weights"
    make_prepared_dataset(root, 16, size=SIZE)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--hints", "patches", "--val", "0.3", "--shard-samples", "4", "--workers", "0"]) == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PIPE_WEIGHTS", str(weights))  # the ldm stage writes ldm.pt there
        for recipe, stage in (("xu2020", "draft"), ("cheng2018", "refine"), ("lee2020", "ldm")):
            assert main(["train", stage, str(root), "--recipe", recipe, "--steps", "3", *COMMON, "--name", stage]) == 0
    torch.save(stand_in_state_dict(seed=0), weights / SOURCES["inception"].file_name)
    runs = root / "runs"
    return {"root": root, "weights": weights, "draft": runs / "draft" / "checkpoints" / "last.pt",
            "refine": runs / "refine" / "checkpoints" / "last.pt", "ldm": runs / "ldm" / "checkpoints" / "last.pt", "ldm_file": runs / "ldm" / "ldm.pt"}


def one_line_error(capsys) -> str:
    """The single line `pipe` printed for an error (no traceback, no library advice)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err and "file an issue" not in err
    return " ".join(err.split())


@pytest.fixture
def sketches(tmp_path) -> Path:
    folder = tmp_path / "sketches"
    folder.mkdir()
    lines = np.full((48, 80), 255, np.uint8)
    cv2.rectangle(lines, (10, 10), (60, 40), 0, 2)
    cv2.imwrite(str(folder / "box.png"), lines)
    return folder


def junk(path: Path, text: str = "not a checkpoint\n") -> Path:
    path.write_text(text)
    return path


# 1 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,saved,given",
    [
        (["--width", "0.5"], "--width 0.25", "--width 0.5"),
        (["--width", "0.25", "--size", "128"], "--size 64", "--size 128"),
        (["--width", "0.25", "--recipe", "cheng2018"], "--recipe xu2020", "--recipe cheng2018"),
        # The loader's position is counted in batches: another batch size would silently change the run (#13).
        (["--width", "0.25", "--batch-size", "4"], "--batch-size 2", "--batch-size 4"),
    ],
)
def test_resuming_with_options_that_change_the_networks_names_the_option_in_one_line(trained, capsys, args, saved, given):
    base = ["train", "draft", str(trained["root"]), "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--name", "draft", "--steps", "5", "--resume"]
    capsys.readouterr()
    assert main([*base, *args]) == 2
    err = one_line_error(capsys)
    assert f"was trained with {saved}, this run has {given}" in err and "last.pt" in err


def test_a_resume_takes_the_recorded_width_size_and_batch_without_retyping_them(trained, capsys):
    """27 #25: `--resume` with only the run's name continues it as recorded (before, --width fell back to 1
    and was refused as a change)."""
    root = str(trained["root"])
    assert main(["train", "draft", root, "--recipe", "xu2020", "--steps", "2", *COMMON, "--name", "retype"]) == 0
    capsys.readouterr()
    assert main(["train", "draft", root, "--name", "retype", "--steps", "3", "--workers", "0", "--resume"]) == 0
    config = json.loads((trained["root"] / "runs" / "retype" / "config.json").read_text())
    assert (config["width"], config["size"], config["batch_size"]) == (0.25, SIZE, 2)
    steps = [json.loads(line)["step"] for line in (trained["root"] / "runs" / "retype" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 3


def test_a_size_the_generator_cannot_take_is_one_line_naming_the_sizes_that_fit(trained, capsys):
    """--size 32 for a generator that halves six times was a ValueError traceback from inside the network."""
    capsys.readouterr()
    assert main(["train", "draft", str(trained["root"]), "--recipe", "xu2020", "--steps", "1", "--batch-size", "2", "--size", "96",
                 "--workers", "0", "--width", "0.25", "--name", "oddsize"]) == 2
    assert "--size 96: the xu2020 draft generator needs a multiple of 64 (try --size 64 or 128)" in one_line_error(capsys)
    assert not (trained["root"] / "runs" / "oddsize").exists()


# 2, 3 ------------------------------------------------------------------------------------------
def test_a_file_that_is_not_a_checkpoint_is_named_in_one_line(trained, sketches, tmp_path, capsys):
    config = trained["draft"].parent.parent / "config.json"
    capsys.readouterr()
    assert main(["colorize", str(sketches), "--draft", str(config), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 2
    assert f"{config} is not a pipe checkpoint" in one_line_error(capsys)
    assert main(["eval", str(trained["root"]), "--draft", str(config), "--no-fid", "--device", "cpu", "--workers", "0"]) == 2
    assert f"{config} is not a pipe checkpoint" in one_line_error(capsys)
    args = ["train", "refine", str(trained["root"]), "--recipe", "cheng2018", "--steps", "1", *COMMON, "--name", "from-config", "--drafts-from", str(config)]
    assert main(args) == 2
    assert f"--drafts-from: {config} is not a pipe checkpoint" in one_line_error(capsys)


def test_a_refine_or_ldm_checkpoint_as_draft_says_where_it_belongs(trained, sketches, tmp_path, capsys):
    colorize = ["colorize", str(sketches), "-o", str(tmp_path / "out"), "--device", "cpu", "--draft"]
    capsys.readouterr()
    assert main([*colorize, str(trained["refine"])]) == 2
    assert "is a refine checkpoint (cheng2018 refine): pass it as --refine, with a draft checkpoint as --draft" in one_line_error(capsys)
    assert main([*colorize, str(trained["ldm"])]) == 2
    assert "is a Line Detection Model (lee2020 ldm), not a colourizer" in one_line_error(capsys)
    assert main([*colorize, str(trained["ldm_file"])]) == 2
    assert "ldm.pt is a Line Detection Model file" in one_line_error(capsys)
    assert main(["eval", str(trained["root"]), "--draft", str(trained["refine"]), "--no-fid", "--device", "cpu", "--workers", "0"]) == 2
    assert "is a refine checkpoint (cheng2018 refine)" in one_line_error(capsys)


# 5 ---------------------------------------------------------------------------------------------
def test_weights_files_that_are_not_weights_get_pipes_own_line(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIPE_WEIGHTS", str(trained["weights"]))
    bad = junk(tmp_path / "bad.pt")
    capsys.readouterr()
    assert main(["extract", str(trained["root"]), "--method", "ldm", "--weights", f"ldm={bad}", "--workers", "0"]) == 2
    assert f"{bad} is not an LDM checkpoint: give the ldm.pt that `pipe train ldm ROOT --recipe lee2020` writes" in one_line_error(capsys)
    lee = ["train", "draft", str(trained["root"]), "--recipe", "lee2020", "--steps", "1", *COMMON, "--name", "lee-junk"]
    assert main([*lee, "--no-content-loss", "--ldm-weights", str(bad)]) == 2
    assert f"{bad} is not an LDM checkpoint" in one_line_error(capsys)
    assert main([*lee, "--no-line-loss", "--vgg-weights", str(bad)]) == 2
    assert f"{bad} is not torchvision's VGG16 state dict" in one_line_error(capsys)
    inception = tmp_path / "inception"
    inception.mkdir()
    junk(inception / SOURCES["inception"].file_name)
    assert main(["eval", str(trained["root"]), "--draft", str(trained["draft"]), "--weights-dir", str(inception), "--hints", "none", "--device", "cpu", "--workers", "0"]) == 2
    assert "is not the FID Inception state dict" in one_line_error(capsys)


# 6 ---------------------------------------------------------------------------------------------
def test_training_an_existing_run_again_needs_resume_or_overwrite(trained, capsys):
    root = trained["root"]
    args = ["train", "draft", str(root), "--recipe", "xu2020", *COMMON, "--name", "again", "--log-every", "1", "--sample-every", "2"]
    run = root / "runs" / "again"
    run.mkdir(parents=True)  # a folder with no checkpoint and no metrics is no run yet
    assert main([*args, "--steps", "2"]) == 0
    metrics = (run / "metrics.jsonl").read_text()
    checkpoint = (run / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert main([*args, "--steps", "3"]) == 2
    err = one_line_error(capsys)
    assert f"{run} already holds a run: use --resume to continue it, or --overwrite to start it over from step 0" in err
    assert (run / "metrics.jsonl").read_text() == metrics and (run / "checkpoints" / "last.pt").read_bytes() == checkpoint
    assert main([*args, "--steps", "3", "--overwrite"]) == 0
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["keys.txt", "step_0000002.png", "step_0000003.png"]
    assert [line.split()[0] for line in (run / "samples" / "keys.txt").read_text().splitlines()] == ["2", "3"]
    capsys.readouterr()
    assert main([*args, "--steps", "4", "--overwrite", "--resume"]) == 2
    assert "choose one" in one_line_error(capsys)


# 9 ---------------------------------------------------------------------------------------------
def test_hints_for_a_model_that_takes_none_warn(trained, sketches, tmp_path, capsys):
    hint = np.zeros((48, 80, 4), np.uint8)
    hint[20:30, 20:30] = (0, 0, 255, 255)
    cv2.imwrite(str(tmp_path / "hint.png"), hint)
    args = ["colorize", str(sketches), "-o", str(tmp_path / "out"), "--device", "cpu", "--hints", str(tmp_path / "hint.png"), "--draft", str(trained["draft"])]
    capsys.readouterr()
    assert main(args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: --hints ignored: xu2020 draft takes no hints (its inputs: line)" in err
    assert main([*args, "--refine", str(trained["refine"]), "--overwrite"]) == 0  # the refinement reads the hints
    assert "warning" not in capsys.readouterr().err


def test_eval_marks_hint_scores_of_a_model_that_takes_no_hints(trained, tmp_path, capsys):
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["eval", str(trained["root"]), "--draft", str(trained["draft"]), "--hints", "none,cfid", "--no-fid", "--device", "cpu", "--workers", "0", "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: --hints cfid: xu2020 draft takes no hints (its inputs: line)" in err
    assert "hint error and colour containment n/a under cfid: model takes no hints" in err
    cfid = json.loads((out / "report.json").read_text())["settings"]["cfid"]
    assert cfid["adherence"] is None and cfid["containment"] is None
    assert cfid["not_computed"] == {"adherence": "model takes no hints", "containment": "model takes no hints", "fid": "--no-fid", "kid": "--no-fid"}
    assert cfid["psnr"]["count"] > 0
    assert "n/a: model takes no hints" in (out / "report.html").read_text()


# 11 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fid", [True, False])
def test_eval_of_one_sample_scores_what_it_can_and_says_why_fid_is_not(trained, tmp_path, capsys, fid):
    out = tmp_path / "report"
    args = ["eval", str(trained["root"]), "--draft", str(trained["draft"]), "--refine", str(trained["refine"]), "--hints", "none,cfid",
            "--limit", "1", "--device", "cpu", "--workers", "0", "--kid-subsets", "2", "--out", str(out),
            *(["--weights-dir", str(trained["weights"])] if fid else ["--no-fid"])]
    capsys.readouterr()
    assert main(args) == 0
    printed = " ".join(capsys.readouterr().err.split())
    report = json.loads((out / "report.json").read_text())
    assert report["samples"] == 1
    for setting, entry in report["settings"].items():
        assert entry["psnr"]["count"] == entry["ssim"]["count"] == 1
        if setting == "cfid":
            assert entry["adherence"]["count"] > 0
        if fid:
            assert entry["fid"] is None and entry["kid"] is None
            assert entry["not_computed"] == {"fid": "FID and KID need at least 2 samples, 1 scored", "kid": "FID and KID need at least 2 samples, 1 scored"}
        else:
            assert entry["fid"] is None and entry["not_computed"]["fid"] == "--no-fid"
    if fid:
        assert "FID and KID n/a under none, cfid: FID and KID need at least 2 samples, 1 scored" in printed
        assert "n/a: FID and KID need at least 2 samples, 1 scored" in (out / "report.html").read_text()


# 12 --------------------------------------------------------------------------------------------
def test_train_workers_default_to_the_cpus_when_fewer_than_4(trained, monkeypatch):
    import pipeline.executors

    monkeypatch.setattr(pipeline.executors, "default_workers", lambda: 1)
    args = ["train", "draft", str(trained["root"]), "--recipe", "xu2020", "--steps", "1", "--batch-size", "2", "--size", str(SIZE), "--width", "0.25", "--name", "workers"]
    assert main(args) == 0
    assert json.loads((trained["root"] / "runs" / "workers" / "config.json").read_text())["workers"] == 1


# 13 --------------------------------------------------------------------------------------------
def test_colorize_and_eval_choose_ema_or_raw_weights(trained, sketches, tmp_path, capsys):
    outputs = {}
    for weights in ("auto", "raw", "ema"):
        out = tmp_path / weights
        capsys.readouterr()
        assert main(["colorize", str(sketches), "--draft", str(trained["draft"]), "-o", str(out), "--device", "cpu", "--weights", weights]) == 0
        printed = " ".join(capsys.readouterr().err.split())
        assert f"with xu2020 draft step 3 ({'raw' if weights == 'auto' else weights} weights)" in printed
        outputs[weights] = cv2.imread(str(out / "box.png"))
    # Step 3 is far below the EMA's warm-up (1000 steps at decay 0.999): auto takes the raw weights.
    assert np.array_equal(outputs["auto"], outputs["raw"]) and not np.array_equal(outputs["raw"], outputs["ema"])
    out = tmp_path / "report"
    assert main(["eval", str(trained["root"]), "--draft", str(trained["draft"]), "--hints", "none", "--no-fid", "--device", "cpu", "--workers", "0", "--weights", "ema", "--out", str(out)]) == 0
    config = json.loads((out / "report.json").read_text())["config"]
    assert config["weights"] == "ema" and config["draft"]["weights"] == "ema"
    capsys.readouterr()
    assert main(["colorize", str(sketches), "--draft", str(trained["draft"]), "-o", str(out), "--weights", "best"]) == 2
    assert "--weights must be one of auto, ema, raw" in one_line_error(capsys)


def test_sample_grids_say_which_weights_and_label_their_columns(trained):
    run = trained["root"] / "runs" / "draft"
    grid = cv2.imread(str(run / "samples" / "step_0000003.png"), cv2.IMREAD_GRAYSCALE)
    rows = 2  # the batch size
    header = grid.shape[0] - rows * SIZE
    assert grid.shape[1] == 5 * SIZE and 10 < header < SIZE
    strip = grid[:header]
    # Two lines of text: the title across the grid, then a label over each of the five columns.
    inked_rows = np.flatnonzero((strip < 128).any(axis=1))
    assert inked_rows.size and inked_rows.max() - inked_rows.min() > header / 3
    label_line = strip[header // 2 :]
    for column in range(5):
        assert (label_line[:, column * SIZE : (column + 1) * SIZE] < 128).any(), column


def test_training_on_other_hint_schemes_than_the_recipes_warns(tmp_path, capsys):
    from tests.helpers import make_sharded_dataset

    root = make_sharded_dataset(tmp_path / "root", 8, 64, "--hints", "patches", "--val", "0", "--shard-samples", "4")
    args = ["train", "draft", str(root), "--recipe", "cheng2018", "--steps", "1", "--batch-size", "2", "--size", "64", "--width", "0.25", "--workers", "0"]
    capsys.readouterr()
    assert main(args) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "warning: cheng2018 draft was published with blur hints, the shards carry patches: shard with `--hints blur` (then --redo)" in err


# 27 #3 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "option,value,message",
    [
        ("--precision", "bf17", "--precision 'bf17': choose from auto, fp32, bf16"),
        ("--jpeg-decoder", "gpu", "--jpeg-decoder 'gpu': choose from auto, opencv, nvjpeg"),
        ("--synth", "cpu", "--synth 'cpu': choose from device, shards"),
        ("--device", "gpu", "--device 'gpu': "),
        ("--preset", "fast", "--preset 'fast': choose from paper, quick"),
        ("--lr-schedule", "exp", "--lr-schedule 'exp': choose from "),
    ],
)
def test_a_bad_train_option_value_is_one_line_with_the_choices_before_anything_is_made(tmp_path, capsys, option, value, message):
    root = tmp_path / "root"
    make_prepared_dataset(root, 2, size=SIZE)
    before = sorted(root.rglob("*"))
    assert main(["train", "draft", str(root), option, value]) == 2
    assert message in one_line_error(capsys)
    assert sorted(root.rglob("*")) == before  # no run folder, no lock, nothing


# 27 #27 ----------------------------------------------------------------------------------------
def test_training_without_shards_says_so_in_one_line_without_drawing_a_bar(tmp_path, capsys):
    root = tmp_path / "root"
    make_prepared_dataset(root, 2, size=SIZE)
    capsys.readouterr()
    assert main(["train", "draft", str(root), "--steps", "10"]) == 2
    err = one_line_error(capsys)  # the one line only: no "0/10" progress bar above it
    assert f"no shards in {root}: run `pipe shard {root}` first" in err
    assert not (root / "runs").exists()



def test_a_resume_with_nothing_left_to_train_says_so_without_drawing_a_bar(trained, capsys):
    """A run already past --steps: the one "nothing to do" line, no `3/2` progress bar before it."""
    root = str(trained["root"])
    assert main(["train", "draft", root, "--recipe", "xu2020", "--steps", "3", *COMMON, "--name", "done-already"]) == 0
    capsys.readouterr()
    assert main(["train", "draft", root, "--name", "done-already", "--steps", "2", "--workers", "0", "--resume"]) == 0
    captured = capsys.readouterr()
    said = " ".join((captured.out + captured.err).split())
    assert "nothing to do" in said and "already at step 3" in said, said
    assert "it/s" not in said and "3/2" not in said, said

# 27 #11 ----------------------------------------------------------------------------------------
def test_shards_made_before_an_extract_redo_are_refused_until_sharded_again(tmp_path, capsys):
    from tests.helpers import make_sharded_dataset

    root = make_sharded_dataset(tmp_path / "root", 6, SIZE, "--hints", "patches", "--val", "0", "--shard-samples", "3")
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0", "--redo"]) == 0
    args = ["train", "draft", str(root), "--recipe", "xu2020", "--steps", "1", *COMMON]
    capsys.readouterr()
    assert main(args) == 2
    err = one_line_error(capsys)
    assert f"the shards in {root / 'shards'} are stale: `pipe extract --redo` replaced the outputs they were made from" in err
    assert f"run `pipe shard {root} --redo` first" in err
    assert not (root / "runs").exists()
    assert main(["shard", str(root), "--hints", "patches", "--val", "0", "--shard-samples", "3", "--workers", "0", "--redo"]) == 0
    assert main(args) == 0
    assert (root / "runs" / "xu2020-draft" / "checkpoints" / "last.pt").is_file()


# 27 #31 ----------------------------------------------------------------------------------------
def test_sample_grids_show_distinct_samples_the_same_in_every_grid(tmp_path):
    from tests.helpers import make_sharded_dataset

    # 6 train samples streamed through the shuffle buffer: the first batch of 4 repeats a sample.
    root = make_sharded_dataset(tmp_path / "root", 8, SIZE, "--hints", "patches", "--val", "0.25", "--shard-samples", "4")
    args = ["train", "draft", str(root), "--recipe", "xu2020", "--steps", "2", "--batch-size", "4", "--size", str(SIZE), "--workers", "0",
            "--width", "0.25", "--record-keys", "--sample-every", "1"]
    assert main(args) == 0
    run = root / "runs" / "xu2020-draft"
    first_batch = (run / "keys" / "rank0.txt").read_text().splitlines()[0].split()[1:]
    assert len(set(first_batch)) < len(first_batch), "the case this test is about: a batch holding one sample twice"
    for step in (1, 2):
        grid = cv2.imread(str(run / "samples" / f"step_{step:07d}.png"))
        truths = grid[grid.shape[0] - 4 * SIZE :].reshape(4, SIZE, 5 * SIZE, 3)[:, :, 4 * SIZE :]
        assert all(not np.array_equal(truths[i], truths[j]) for i in range(4) for j in range(i + 1, 4)), step
    shown = [line.split() for line in (run / "samples" / "keys.txt").read_text().splitlines()]
    assert [line[0] for line in shown] == ["1", "2"]
    keys = shown[0][1:]
    assert len(keys) == 4 and len(set(keys)) == 4 and shown[1][1:] == keys
