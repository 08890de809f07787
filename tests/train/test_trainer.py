"""`pipe train`: recipes train on CPU, write checkpoints, samples and metrics, and resume exactly."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.cli import main
from tests.helpers import REAL_DATA, make_prepared_dataset, make_sharded_dataset
from train.checkpoint import load_checkpoint
from train.networks.layers import init_weights
from train.recipes import stage_recipe

SIZE = 64


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_sharded_dataset(tmp_path_factory.mktemp("train") / "root", 24, SIZE, "--hints", "blur,patches,palette", "--val", "0.1", "--shard-samples", "6")


def train_args(root: Path, *extra: str) -> list[str]:
    return ["train", "draft", str(root), "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--log-every", "1", *extra]


def losses(run_dir: Path) -> dict[int, dict]:
    return {r["step"]: r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())}


def test_a_run_writes_checkpoint_samples_metrics_and_tensorboard(dataset):
    assert main(train_args(dataset, "--recipe", "xu2020", "--steps", "4", "--name", "smoke", "--sample-every", "2")) == 0
    run = dataset / "runs" / "smoke"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["keys.txt", "step_0000002.png", "step_0000004.png"]
    assert list(losses(run)) == [1, 2, 3, 4]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    config = json.loads((run / "config.json").read_text())
    assert config["recipe"] == "xu2020" and config["size"] == SIZE and config["inputs"] == ["line"]
    recipe = stage_recipe("xu2020", "draft")
    generator = recipe.make_generator(recipe.in_channels, SIZE, 1.0)
    info = load_checkpoint(run / "checkpoints" / "last.pt", {"generator": generator}, restore_random=False)
    assert info["step"] == 4 and info["extras"]["loader_position"]["batches"] == 4
    out = generator.eval()(torch.zeros(1, 1, SIZE, SIZE))
    assert out.shape == (1, 3, SIZE, SIZE)


@pytest.mark.slow
def test_resuming_repeats_the_uninterrupted_runs_losses(dataset):
    common = ("--recipe", "xu2020", "--deterministic", "--seed", "3")
    assert main(train_args(dataset, *common, "--steps", "6", "--name", "straight")) == 0
    assert main(train_args(dataset, *common, "--steps", "3", "--name", "stopped")) == 0
    assert main(train_args(dataset, *common, "--steps", "6", "--name", "stopped", "--resume")) == 0
    straight, resumed = losses(dataset / "runs" / "straight"), losses(dataset / "runs" / "stopped")
    for step in (4, 5, 6):
        for name in ("d_real", "d_fake", "g_gan", "g_l1"):
            assert resumed[step][name] == straight[step][name], (step, name)


SMOKE = [
    ("xu2020", "draft", ["line"], {"d_real", "d_fake", "g_gan", "g_l1", "g_total"}),
    ("xu2020", "refine", ["line", "hint", "draft"], {"d_real", "d_fake", "g_gan", "g_l1", "g_total"}),
    ("lee2020", "ldm", ["color"], {"g_l1", "g_total"}),
    ("lee2020", "draft", ["line", "hint"], {"d_real", "d_fake", "g_gan", "g_l1", "g_total"}),  # losses needing files off
    ("lee2020", "refine", ["line", "draft"], {"g_l1", "g_total"}),
    ("chen2019", "draft", ["line3", "palette"], {"d_real", "d_fake", "g_gan", "g_l1", "g_guide1", "g_guide2", "g_total"}),
    ("cheng2018", "draft", ["line", "hint_rgb"], {"d_real", "d_fake", "g_gan", "g_l1", "g_total"}),
    ("cheng2018", "refine", ["line", "hint_rgb", "draft"], {"d_real", "d_fake", "g_gan", "g_l1", "g_total"}),
    ("fu2018", "draft", ["line", "hint_rgb"], {"d_real", "d_fake", "g_gan", "g_l1", "g_total"}),
    ("fu2018-cnn", "draft", ["line", "hint_rgb"], {"g_l2", "g_total"}),
    ("fu2018-wgan", "draft", ["line", "hint_rgb"], {"d_real", "d_fake", "g_gan", "g_l1", "g_total"}),  # D and G equally often (Fu et al. III.E)
]


@pytest.mark.parametrize("recipe,stage,inputs,loss_names", SMOKE)
def test_every_recipe_trains_20_steps_checkpoints_and_resumes(dataset, tmp_path, monkeypatch, recipe, stage, inputs, loss_names):
    monkeypatch.setenv("PIPE_WEIGHTS", str(tmp_path / "weights"))  # lee2020 ldm writes ldm.pt there
    name = f"{recipe}-{stage}-smoke"
    args = ["train", stage, str(dataset), "--recipe", recipe, "--batch-size", "2", "--size", str(SIZE), "--workers", "0",
            "--width", "0.25", "--name", name, "--log-every", "1", "--no-content-loss", "--no-line-loss"]
    assert main([*args, "--steps", "10"]) == 0
    assert main([*args, "--steps", "20", "--resume"]) == 0
    run = dataset / "runs" / name
    config = json.loads((run / "config.json").read_text())
    assert config["inputs"] == inputs
    records = losses(run)
    assert list(records) == list(range(1, 21))
    assert set(records[1]) - {"step", "images_per_second", "lr"} == loss_names
    assert all(np.isfinite(v) for r in records.values() for v in r.values())
    from train.inference import load_generator

    loaded = load_generator(run / "checkpoints" / "last.pt")
    out_channels = 1 if stage == "ldm" else 3
    assert loaded.step == 20
    assert loaded.generator(torch.zeros(2, loaded.recipe.in_channels, SIZE, SIZE)).shape == (2, out_channels, SIZE, SIZE)


def test_wgan_critic_weights_stay_clipped_and_g_steps_every_fifth_with_critic_steps_5(dataset):
    args = ["train", "draft", str(dataset), "--recipe", "fu2018-wgan", "--steps", "6", "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25", "--name", "wgan", "--log-every", "1",
            "--critic-steps", "5"]
    assert main(args) == 0
    run = dataset / "runs" / "wgan"
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)["state"]["discriminator"]
    assert max(v.abs().max().item() for k, v in state.items() if k.endswith("weight") or k.endswith("bias")) <= 0.01 + 1e-7
    records = losses(run)
    assert [step for step, r in records.items() if "g_total" in r] == [5]


@pytest.mark.parametrize(
    "args,message",
    [
        (["--recipe", "nope"], "unknown recipe 'nope'"),
        (["--recipe", "xu2020", "--resume", "--name", "never"], "no checkpoint"),
    ],
)
def test_training_errors_are_one_line(dataset, args, message, capsys):
    assert main(train_args(dataset, "--steps", "1", *args)) == 2
    assert message in capsys.readouterr().err
    assert main(["train", "refine", str(dataset), "--recipe", "chen2019"]) == 2
    assert "has no refine stage" in capsys.readouterr().err


def test_recipes_say_which_shard_options_they_need(tmp_path, capsys):
    root = tmp_path / "root"
    make_prepared_dataset(root, 6, size=SIZE)
    assert main(["train", "draft", str(root), "--recipe", "xu2020", "--steps", "1"]) == 2
    assert "pipe shard" in capsys.readouterr().err
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--hints", "patches", "--artifacts", "none", "--workers", "0"]) == 0
    capsys.readouterr()
    assert main(["train", "draft", str(root), "--recipe", "chen2019", "--steps", "1"]) == 2
    assert "--hints palette" in capsys.readouterr().err
    assert main(["train", "refine", str(root), "--recipe", "cheng2018", "--steps", "1"]) == 2
    assert "--artifacts" in capsys.readouterr().err


@pytest.fixture(scope="module")
def learning_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("learn") / "root"
    make_prepared_dataset(root, 160, size=SIZE, seed=5)
    assert main(["extract", str(root), "--method", "xdog", "--workers", "0"]) == 0
    assert main(["shard", str(root), "--hints", "patches", "--val", "0.1", "--shard-samples", "20", "--workers", "0"]) == 0
    return root


def learn(root: Path, recipe: str, stage: str, *extra: str) -> Path:
    """300 steps at width 0.25; returns the checkpoint."""
    name = f"learn-{recipe}-{stage}"
    args = ["train", stage, str(root), "--recipe", recipe, "--steps", "300", "--batch-size", "8", "--size", str(SIZE),
            "--width", "0.25", "--workers", "0", "--name", name, "--log-every", "50", "--sample-every", "300", *extra]
    checkpoint = root / "runs" / name / "checkpoints" / "last.pt"
    if not checkpoint.is_file():
        assert main(args) == 0
    return checkpoint


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["xu2020", "cheng2018"])
def test_300_steps_lower_the_heldout_l1_well_below_the_untrained_models(learning_data, recipe):
    from train.inference import heldout_l1, load_generator

    loaded = load_generator(learn(learning_data, recipe, "draft"))
    val = learning_data / "shards" / "val"
    trained = heldout_l1(loaded.generator, loaded.recipe, val, SIZE)
    untrained = heldout_l1(untrained_generator(loaded.recipe, SIZE, 0.25, seed=0), loaded.recipe, val, SIZE)
    assert trained < 0.6 * untrained, (trained, untrained)


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe,refine_steps,ratio",
    [
        # xu2020's draft sees no hints and its refinement does: a clear gain.
        ("xu2020", "500", 0.9),
        # cheng2018's draft already sees the hints, so its refinement can only add a little there.
        ("cheng2018", "300", 1.0),
    ],
)
def test_the_refinement_given_hints_beats_the_draft_alone_at_the_hinted_pixels(learning_data, recipe, refine_steps, ratio):
    from train.inference import load_generator
    from train.inputs import generator_input, target_image
    from train.loader import LoaderConfig, device_batches, make_loader

    draft_checkpoint = learn(learning_data, recipe, "draft")
    refine_checkpoint = learn(learning_data, recipe, "refine", "--drafts-from", str(draft_checkpoint), "--steps", refine_steps)
    drafter, refiner = load_generator(draft_checkpoint), load_generator(refine_checkpoint)
    loader = make_loader(LoaderConfig(shards=(str(learning_data / "shards" / "val"),), batch_size=16, workers=0, shuffle_buffer=0, images=("color", "line", "hint")))
    draft_error = refine_error = pixels = 0.0
    with torch.no_grad():
        for batch in device_batches(loader, "cpu"):
            draft = drafter.generator(generator_input(batch, drafter.recipe.inputs))
            refined = refiner.generator(generator_input({**batch, "draft": (draft + 1) / 2}, refiner.recipe.inputs))
            truth = target_image(batch)
            hinted = batch["hint"][:, 3:] == 1.0  # the patch hints' squares
            draft_error += ((draft - truth).abs().mean(1, keepdim=True) * hinted).sum().item()
            refine_error += ((refined - truth).abs().mean(1, keepdim=True) * hinted).sum().item()
            pixels += hinted.sum().item()
    assert pixels > 100
    assert refine_error / pixels < ratio * draft_error / pixels, (refine_error / pixels, draft_error / pixels)


@pytest.mark.slow
def test_eval_scores_the_trained_cheng2018_draft_above_a_one_step_one(learning_data):
    """`pipe eval` on learned weights: training shows in every per-image score."""
    trained = learn(learning_data, "cheng2018", "draft")
    assert main(["train", "draft", str(learning_data), "--recipe", "cheng2018", "--steps", "1", "--batch-size", "8", "--size", str(SIZE),
                 "--width", "0.25", "--workers", "0", "--name", "one-step"]) == 0
    barely = learning_data / "runs" / "one-step" / "checkpoints" / "last.pt"
    reports = {}
    for name, checkpoint in (("trained", trained), ("barely", barely)):
        assert main(["eval", str(learning_data), "--draft", str(checkpoint), "--hints", "none,cfid,shard", "--no-fid", "--device", "cpu", "--name", name]) == 0
        reports[name] = json.loads((learning_data / "reports" / name / "report.json").read_text())["settings"]
    trained_scores, barely_scores = reports["trained"], reports["barely"]
    for setting in ("none", "cfid", "shard"):
        assert trained_scores[setting]["psnr"]["mean"] > barely_scores[setting]["psnr"]["mean"] + 3
        assert trained_scores[setting]["ssim"]["mean"] > barely_scores[setting]["ssim"]["mean"]
    # Closer to the hinted colours (300 steps at 64 px learn the colours more than the hints: under the
    # shards' own patch hints the error drops by about a tenth, under C-FID's truth pixels by a third).
    assert trained_scores["cfid"]["adherence"]["mean"] < 0.8 * barely_scores["cfid"]["adherence"]["mean"]
    assert trained_scores["shard"]["adherence"]["mean"] < barely_scores["shard"]["adherence"]["mean"]


@pytest.fixture(scope="module")
def checkpoints(dataset) -> dict[str, Path]:
    """A tiny draft (xu2020) and refinement (cheng2018) checkpoint at 64x64."""
    paths = {}
    for recipe, stage in (("xu2020", "draft"), ("cheng2018", "refine")):
        name = f"colorize-{stage}"
        args = ["train", stage, str(dataset), "--recipe", recipe, "--steps", "3", "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25", "--name", name]
        assert main(args) == 0
        paths[stage] = dataset / "runs" / name / "checkpoints" / "last.pt"
    return paths


def write_sketches(folder: Path) -> dict[str, tuple[int, int]]:
    import cv2

    from pipeline.demo.illustrations import OUTLINE, make_illustration

    folder.mkdir(parents=True, exist_ok=True)
    sizes = {"wide": (37, 100), "tall": (300, 120), "square": (64, 64)}
    for index, (name, (height, width)) in enumerate(sizes.items()):
        rgb = make_illustration(np.random.default_rng(index), width, height)
        lines = np.where(np.abs(rgb.astype(int) - np.array(OUTLINE)).sum(2) < 60, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / (f"{name}.jpg" if name == "tall" else f"{name}.png")), lines)
    (folder / "notes.txt").write_text("not a sketch")
    return sizes


def test_colorize_keeps_sizes_and_orientation_and_batches_agree(checkpoints, tmp_path):
    import cv2

    sizes = write_sketches(tmp_path / "sketches")
    hints = tmp_path / "hints"
    hints.mkdir()
    hint = np.zeros((37, 100, 4), np.uint8)
    hint[10:20, 10:30] = (0, 0, 255, 255)  # BGRA: opaque red
    cv2.imwrite(str(hints / "wide.png"), hint)
    outputs = {}
    for batch in ("1", "3"):
        out = tmp_path / f"out{batch}"
        args = ["colorize", str(tmp_path / "sketches"), "--draft", str(checkpoints["draft"]), "--refine", str(checkpoints["refine"]),
                "--hints", str(hints), "-o", str(out), "--device", "cpu", "--batch-size", batch]
        assert main(args) == 0
        outputs[batch] = {p.stem: cv2.imread(str(p)) for p in out.iterdir()}
    assert set(outputs["1"]) == set(sizes)
    for name, (height, width) in sizes.items():
        assert outputs["1"][name].shape == (height, width, 3)
        # Equal up to a rounding flip: the CPU's convolution kernels differ by batch size in the last bit.
        assert np.abs(outputs["1"][name].astype(int) - outputs["3"][name].astype(int)).max() <= 1


@pytest.mark.skipif(not (REAL_DATA / "real" / "lineart").is_dir(), reason="real line art not available")
def test_colorize_real_line_art(checkpoints, tmp_path):
    import cv2

    out = tmp_path / "out"
    assert main(["colorize", str(REAL_DATA / "real" / "lineart"), "--draft", str(checkpoints["draft"]), "-o", str(out), "--device", "cpu"]) == 0
    for sketch in sorted((REAL_DATA / "real" / "lineart").iterdir()):
        result = cv2.imread(str(out / f"{sketch.stem}.png"))
        assert result is not None and result.shape[:2] == cv2.imread(str(sketch), cv2.IMREAD_GRAYSCALE).shape


def test_colorize_errors_are_one_line(checkpoints, tmp_path, capsys):
    write_sketches(tmp_path / "sketches")
    assert main(["colorize", str(tmp_path / "sketches"), "--draft", str(tmp_path / "none.pt"), "-o", str(tmp_path / "o")]) == 2
    assert "none.pt not found" in capsys.readouterr().err
    assert main(["colorize", str(tmp_path / "empty"), "--draft", str(checkpoints["draft"]), "-o", str(tmp_path / "o")]) == 2
    assert "no sketches" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["colorize", str(tmp_path / "sketches"), "--draft", str(checkpoints["draft"]), "-o", str(tmp_path / "o"), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


def test_lee2020_trains_its_ldm_first_then_the_draft_with_content_and_line_losses(dataset, tmp_path, monkeypatch, capsys):
    from extractors.ldm import load_ldm
    from train.networks.vgg import vgg16_features

    monkeypatch.setenv("PIPE_WEIGHTS", str(tmp_path / "weights"))
    common = ["--recipe", "lee2020", "--batch-size", "2", "--size", str(SIZE), "--workers", "0", "--width", "0.25", "--log-every", "1"]
    assert main(["train", "draft", str(dataset), *common, "--steps", "1", "--name", "lee-nofiles"]) == 2
    err = capsys.readouterr().err
    assert "vgg16-397923af.pth" in err and "--no-content-loss" in err
    assert main(["train", "ldm", str(dataset), *common, "--steps", "3", "--name", "lee-ldm"]) == 0
    ldm = load_ldm(tmp_path / "weights" / "ldm.pt")
    assert ldm.config.size == SIZE and (dataset / "runs" / "lee-ldm" / "ldm.pt").is_file()
    records = losses(dataset / "runs" / "lee-ldm")
    assert set(records[1]) - {"step", "images_per_second", "lr"} == {"g_l1", "g_total"}
    torch.save({f"features.{k}": v for k, v in vgg16_features().state_dict().items()}, tmp_path / "weights" / "vgg16-397923af.pth")
    assert main(["train", "draft", str(dataset), *common, "--steps", "2", "--name", "lee-draft"]) == 0
    run = dataset / "runs" / "lee-draft"
    assert {"g_gan", "g_l1", "g_content", "g_line"} <= set(losses(run)[1])
    config = json.loads((run / "config.json").read_text())
    assert config["content_loss_active"] and config["line_loss_active"] and config["inputs"] == ["line", "hint"]
    assert main(["train", "draft", str(dataset), *common, "--steps", "2", "--name", "lee-bare", "--no-content-loss", "--no-line-loss"]) == 0
    config = json.loads((dataset / "runs" / "lee-bare" / "config.json").read_text())
    assert not config["content_loss_active"] and not config["line_loss_active"]
    assert main(["train", "refine", str(dataset), *common, "--steps", "2", "--name", "lee-refine"]) == 0
    assert set(losses(dataset / "runs" / "lee-refine")[1]) - {"step", "images_per_second", "lr"} == {"g_l1", "g_total"}


def test_googlenet_loads_torchvisions_layout_and_encodes_xu2020_drafts(dataset, tmp_path, capsys):
    from train.networks.googlenet import GoogLeNet, load_googlenet

    network = GoogLeNet()
    assert sum(p.numel() for p in network.parameters()) == 6_624_904  # torchvision's GoogLeNet, as published
    state = network.state_dict()
    state["aux1.fc2.weight"] = torch.zeros(1000, 1024)  # auxiliary classifiers in the file are ignored
    path = tmp_path / "googlenet-1378be20.pth"
    torch.save(state, path)
    loaded = load_googlenet(path)
    assert torch.equal(loaded.inception4e.branch1.conv.weight, network.inception4e.branch1.conv.weight)
    assert loaded.features(torch.rand(1, 3, 64, 64)).shape == (1, 832, 4, 4)
    args = ["train", "refine", str(dataset), "--recipe", "xu2020", "--steps", "3", "--batch-size", "2", "--size", str(SIZE),
            "--workers", "0", "--width", "0.25", "--name", "xu-googlenet", "--feature-encoder", str(path)]
    assert main(args) == 0
    from train.inference import load_generator

    generator = load_generator(dataset / "runs" / "xu-googlenet" / "checkpoints" / "last.pt").generator
    # The ImageNet weights are the encoder's initial weights, fine-tuned with the generator (Xu 2020,
    # sec. 4.3.2); its BatchNorm statistics stay ImageNet's.
    trained, published = generator.pretrained.conv1.conv.weight, network.conv1.conv.weight
    assert not torch.equal(trained, published) and torch.allclose(trained, published, atol=0.01)
    assert torch.equal(generator.pretrained.conv1.bn.running_mean, network.conv1.bn.running_mean)
    assert main([*args[:-1], str(tmp_path / "missing.pth"), "--name", "xu-missing"]) == 2
    assert "GoogLeNet_Weights.IMAGENET1K_V1" in capsys.readouterr().err


def untrained_generator(recipe, size: int, width: float, seed: int) -> torch.nn.Module:
    """The generator a run with this seed starts from (same initialization as the trainer's)."""
    torch.manual_seed(seed)
    generator = recipe.make_generator(recipe.in_channels, size, width)
    generator.apply(getattr(generator, "weight_init", init_weights))
    return generator


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_from_its_checkpoint_without_duplicate_records(dataset):
    import signal
    import subprocess
    import sys
    import time

    name = "killed"
    command = [sys.executable, "-m", "pipeline.cli", *train_args(dataset, "--recipe", "xu2020", "--width", "0.25", "--name", name, "--checkpoint-every", "3")]
    run = dataset / "runs" / name
    process = subprocess.Popen([*command, "--steps", "400"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = run / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (checkpoint.exists() and len(losses(run)) >= 4):
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert checkpoint.exists(), "no checkpoint before the kill"
    saved = load_checkpoint(checkpoint, {}, restore_random=False)["step"]
    assert 0 < saved < 400
    result = subprocess.run([*command, "--steps", str(saved + 4), "--resume"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, saved + 5))  # each step once: what ran after the checkpoint was logged again
    assert load_checkpoint(checkpoint, {}, restore_random=False)["step"] == saved + 4
    assert not (dataset / ".pipe" / "tmp" / f"train-{name}").exists()


def test_sigterm_ends_a_run_as_ctrl_c_does_with_a_checkpoint_and_one_line(dataset):
    """A batch scheduler stops a job with SIGTERM: the run saves its state and says how to resume."""
    import signal
    import subprocess
    import sys
    import time

    name = "terminated"
    command = [sys.executable, "-m", "pipeline.cli", *train_args(dataset, "--recipe", "xu2020", "--width", "0.25", "--name", name, "--steps", "400")]
    run = dataset / "runs" / name
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not ((run / "metrics.jsonl").exists() and len(losses(run)) >= 3):
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    step = load_checkpoint(run / "checkpoints" / "last.pt", {}, restore_random=False)["step"]
    assert 3 <= step < 400
    assert f"interrupted: checkpoint saved at step {step}; continue with --resume" in " ".join(err.split())
