"""Recipes as published: `--show-config` for every recipe and stage against the papers' values, every
value with a source, the README's table rendered from the same settings, and the architectures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline.cli import main
from train.networks.residual_cnn import ResidualCNN, ResidualLayer
from train.networks.unet import NoiseDropout, RonnebergerUNet, UNetGenerator
from train.recipes import DOCUMENTS, RECIPES, stage_recipe
from train.settings import KEYS, QUICK_STEPS, recipe_table_markdown

README = Path(__file__).resolve().parents[2] / "README.md"

# The values each document gives (or pipe assumes where it is silent, marked A), written out by hand
# from the five documents: size, crop, batch, lr, betas, LR milestones, gamma, steps, epochs, loss
# weights, D steps per G step, what D sees besides the image, label flips.
EXPECTED = {
    ("xu2020", "draft"): (256, None, 64, 2e-4, [0.5, 0.999], [], 0.1, 10_000, None, {"gan": 1.0, "l1": 100.0}, 1, ["line"], 0.0),  # all but losses/D: A
    ("xu2020", "refine"): (256, None, 64, 2e-4, [0.5, 0.999], [], 0.1, 10_000, None, {"gan": 0.01, "l1": 1.0}, 1, [], 0.0),  # eq. 4.4
    ("cheng2018", "draft"): (256, 256, 16, 2e-4, [0.5, 0.999], [], 0.1, 10_000, None, {"gan": 0.01, "l1": 1.0}, 1, ["hint_rgb"], 0.10),
    ("cheng2018", "refine"): (256, 256, 16, 2e-4, [0.5, 0.999], [], 0.1, 10_000, None, {"gan": 0.01, "l1": 1.0}, 1, ["hint_rgb", "draft"], 0.10),
    ("chen2019", "draft"): (512, None, 4, 2e-4, [0.5, 0.999], [], 0.1, None, 15, {"gan": 1.0, "l1": 100.0, "guide": 100.0}, 1, ["line3"], 0.0),
    ("lee2020", "draft"): (128, 512, 64, 1e-4, [0.5, 0.9], [48_000], 0.1, 175_000, None, {"gan": 0.05, "l1": 1.0, "content": 0.1, "line": 1.0}, 1, [], 0.0),
    ("lee2020", "refine"): (512, 512, 4, 1e-4, [0.5, 0.9], [733_000], 0.1, 1_173_000, None, {"l1": 1.0}, None, None, None),
    ("lee2020", "ldm"): (128, 512, 16, 1e-4, [0.5, 0.9], [110_000, 183_000], 0.1, 256_000, None, {"l1": 1.0}, None, None, None),
    ("fu2018", "draft"): (256, None, 16, 2e-4, [0.5, 0.999], [], 0.1, 10_000, None, {"gan": 1.0, "l1": 100.0}, 1, [], 0.0),
    ("fu2018-cnn", "draft"): (256, None, 16, 2e-4, [0.5, 0.999], [], 0.1, None, 70, {"l2": 1.0}, None, None, None),
    ("fu2018-wgan", "draft"): (256, None, 16, 5e-5, None, [], 0.1, 10_000, None, {"gan": 1.0, "l1": 100.0}, 1, [], 0.0),
}
COLUMNS = ("size", "crop", "batch_size", "lr", "betas", "lr_milestones", "lr_gamma", "steps", "epochs", "loss_weights", "critic_steps", "d_condition", "label_flip")
ALL_STAGES = [(name, stage) for name, recipe in RECIPES.items() for stage in recipe.stages]


def show_config(capsys, stage: str, *args: str) -> dict:
    assert main(["train", stage, *args, "--show-config"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_recipe_and_stage_is_in_the_table():
    assert sorted(EXPECTED) == sorted(ALL_STAGES)


@pytest.mark.parametrize("recipe,stage", ALL_STAGES)
def test_show_config_parses_and_equals_the_papers_values(capsys, tmp_path, recipe, stage):
    settings = show_config(capsys, stage, "--recipe", recipe)
    assert {key: settings[key] for key in COLUMNS} == dict(zip(COLUMNS, EXPECTED[recipe, stage]))
    assert settings["recipe"] == recipe and settings["stage"] == stage and settings["preset"] == "paper"
    assert not (tmp_path / "runs").exists()
    # Every key has a source: a document and section, or an assumption with its reason.
    assert set(settings["sources"]) == set(KEYS)
    documents = tuple(DOCUMENTS) + tuple(DOCUMENTS.values())
    for key, source in settings["sources"].items():
        assert source and (source.startswith(documents) or source.startswith("assumption: ") or key in ("preset", "preset_note", "document", "epochs", "steps")), (key, source)
        if source.startswith("assumption: "):
            assert len(source) > len("assumption: ") + 10, (key, source)  # says why
    # Sections are cited where a document gives a value.
    assert "sec." in settings["sources"]["inputs"]


def test_the_papers_schedules_carry_their_sections(capsys):
    lee = show_config(capsys, "ldm", "--recipe", "lee2020")
    assert lee["lr_schedule"] == "step" and lee["sources"]["lr_milestones"] == "Lee & Lee 2020, sec. 3.3 (110K and 183K)"
    chen = show_config(capsys, "draft", "--recipe", "chen2019")
    assert chen["sources"]["epochs"].startswith("Chen et al. 2019, sec. 5, Table 1")
    assert chen["sources"]["betas"].startswith("Chen et al. 2019") and "assumption: beta2" in chen["sources"]["betas"]
    cheng = show_config(capsys, "draft", "--recipe", "cheng2018")
    assert cheng["label_flip_choices"] == [0.05, 0.10] and cheng["sources"]["crop"].startswith("Cheng 2018, sec. 3")
    assert show_config(capsys, "draft", "--recipe", "cheng2018", "--label-flip", "0.05")["label_flip"] == 0.05
    lee_draft = show_config(capsys, "draft", "--recipe", "lee2020")
    assert lee_draft["content"] == {"layers": ["relu2_2"], "distance": "mse"} and "eq. 5" in lee_draft["sources"]["content"]
    wgan = show_config(capsys, "draft", "--recipe", "fu2018-wgan")
    assert wgan["critic_steps"] == 1 and "equally frequently" in wgan["sources"]["critic_steps"]
    xu = show_config(capsys, "draft", "--recipe", "xu2020")
    assert xu["inference_dropout"] is True


def test_quick_preset_is_labelled_not_the_papers_and_scales_milestones(capsys):
    quick = show_config(capsys, "draft", "--recipe", "lee2020", "--preset", "quick")
    assert quick["preset"] == "quick" and "NOT the paper's" in quick["preset_note"]
    assert quick["steps"] == QUICK_STEPS and quick["epochs"] is None
    assert quick["lr_milestones"] == [round(48_000 * QUICK_STEPS / 175_000)]
    assert "not the paper's" in quick["sources"]["steps"] and "not the paper's" in quick["sources"]["lr_milestones"]
    chen = show_config(capsys, "draft", "--recipe", "chen2019", "--preset", "quick")
    assert chen["steps"] == QUICK_STEPS and chen["epochs"] is None


def test_options_override_and_say_so(capsys):
    settings = show_config(capsys, "draft", "--recipe", "xu2020", "--lr-schedule", "cosine", "--warmup-steps", "100", "--epochs", "3", "--crop", "224", "--flip")
    assert (settings["lr_schedule"], settings["warmup_steps"], settings["epochs"], settings["steps"], settings["crop"], settings["flip"]) == ("cosine", 100, 3, None, 224, True)
    assert settings["sources"]["lr_schedule"].startswith("option --lr-schedule")
    # Milestones ask for step decay; another schedule drops the recipe's milestones.
    assert show_config(capsys, "draft", "--recipe", "xu2020", "--lr-milestones", "500,900")["lr_schedule"] == "step"
    assert show_config(capsys, "ldm", "--recipe", "lee2020", "--lr-schedule", "constant")["lr_milestones"] == []


@pytest.mark.parametrize(
    "args,message",
    [
        (["--recipe", "lee2020", "--steps", "5", "--epochs", "2"], "give one"),
        (["--recipe", "lee2020", "--preset", "slow"], "--preset 'slow'"),
        (["--recipe", "lee2020", "--lr-schedule", "exp"], "--lr-schedule 'exp'"),
        (["--recipe", "lee2020", "--lr-milestones", "9,3"], "increasing"),
        (["--recipe", "lee2020", "--lr-milestones", "48K"], "comma-separated"),
        (["--recipe", "fu2018-wgan", "--label-flip", "0.1"], "Wasserstein"),
        (["--recipe", "fu2018-cnn", "--critic-steps", "5"], "no discriminator"),
    ],
)
def test_bad_settings_are_one_line_errors(capsys, args, message):
    assert main(["train", "draft", *args, "--show-config"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_readme_holds_the_recipe_table_rendered_from_the_settings():
    table = recipe_table_markdown()
    for name, stage in ALL_STAGES:
        assert f"| `{name}` | {stage} |" in table
    assert table in README.read_text(), "paste train.settings.recipe_table_markdown() into README.md's `pipe train` section"


def test_table_marks_assumptions_and_shows_the_published_values():
    rows = {tuple(line.split(" | ")[:2]): line for line in recipe_table_markdown().splitlines() if line.startswith("| `")}
    lee = rows["| `lee2020`", "draft"]
    assert "Adam 1e-4 (0.5, 0.9) |" in lee and "x0.1 at 48K |" in lee and "175K steps |" in lee and "\\*" not in lee.split(" | ")[4]
    assert "15 epochs |" in rows["| `chen2019`", "draft"]
    assert "10K steps\\*" in rows["| `xu2020`", "draft"]


# ---------------------------------------------------------------------------- architectures

def build(recipe: str, stage: str, size: int = 64, width: float = 0.125) -> tuple[nn.Module, nn.Module | None]:
    spec = stage_recipe(recipe, stage)
    generator = spec.make_generator(spec.in_channels, size, width)
    discriminator = spec.make_discriminator(spec.d_in_channels, width) if spec.make_discriminator else None
    return generator, discriminator


def test_cheng2018_uses_ronnebergers_unet_without_overlapping_transposed_kernels():
    generator, discriminator = build("cheng2018", "draft")
    assert isinstance(generator, RonnebergerUNet)
    assert any(isinstance(m, nn.MaxPool2d) for m in generator.modules())
    assert all(m.kernel_size == (2, 2) and m.stride == (2, 2) for m in generator.modules() if isinstance(m, nn.ConvTranspose2d))
    assert generator(torch.zeros(2, 4, 64, 64)).shape == (2, 3, 64, 64)
    assert discriminator.config.in_channels == 3 + 3  # the hint image and the output, not the sketch


def test_fu2018_cnn_is_a_small_residual_net_and_its_gans_d_sees_the_image_alone():
    generator, discriminator = build("fu2018-cnn", "draft")
    assert isinstance(generator, ResidualCNN) and discriminator is None
    assert sum(isinstance(m, ResidualLayer) for m in generator.modules()) == 2
    assert generator(torch.zeros(1, 4, 64, 64)).shape == (1, 3, 64, 64)
    assert stage_recipe("fu2018", "draft").d_in_channels == 3 and stage_recipe("fu2018-wgan", "draft").d_in_channels == 3


def test_chen2019_pools_and_its_d_sees_the_sketch_not_the_palette():
    generator, discriminator = build("chen2019", "draft")
    assert any(isinstance(m, nn.MaxPool2d) for m in generator.modules())
    assert discriminator.config.in_channels == 3 + 3
    assert generator.eval()(torch.zeros(1, 15, 64, 64)).shape == (1, 3, 64, 64)


def test_lee2020_draft_has_ten_resnext_blocks_per_level_and_an_unconditional_d():
    generator, discriminator = build("lee2020", "draft")
    assert all(len(level) == 10 for level in generator.encode) and len(generator.bottleneck) == 10
    assert discriminator.config.in_channels == 3
    assert generator(torch.zeros(1, 5, 64, 64)).shape == (1, 3, 64, 64)
    refine, _ = build("lee2020", "refine")
    assert all(len(level) == 2 for level in refine.encode)


def test_xu2020_dropout_sits_on_the_three_innermost_decoder_blocks_and_stays_on_at_inference():
    torch.manual_seed(0)
    generator, discriminator = build("xu2020", "draft")
    assert isinstance(generator, UNetGenerator)
    with_dropout = [index for index, block in enumerate(generator.up) if any(isinstance(m, NoiseDropout) for m in block)]
    assert with_dropout == [0, 1, 2]  # CD512, CD1024, CD1024
    generator.eval()
    x = torch.randn(3, 1, 64, 64)
    noisy = generator(x)
    # Reproducible: each sample's noise is seeded by its own input, whatever batch it is in.
    assert torch.equal(generator(x), noisy)
    assert torch.allclose(generator(x[1:2]), noisy[1:2], atol=1e-6)
    for module in generator.modules():
        if isinstance(module, NoiseDropout):
            module.p = 0.0
    # The noise z of G(x, z) is on at inference: without it the output changes (little, at random init).
    assert (generator(x) - noisy).abs().max() > 1e-5
    assert discriminator.config.in_channels == 1 + 3
    assert stage_recipe("xu2020", "refine").d_in_channels == 3  # eq. 4.4: D(y_f)


def test_xu2020_refine_fine_tunes_the_imagenet_encoder():
    from train.feature_encoder import attach_feature_encoder

    generator, _ = build("xu2020", "refine")
    attach_feature_encoder(generator, None, fine_tune=stage_recipe("xu2020", "refine").fine_tune_encoder)
    generator.train()
    generator(torch.randn(1, 8, 64, 64)).mean().backward()
    assert generator.pretrained.conv1.conv.weight.grad is not None
    assert not generator.pretrained.training  # BatchNorm statistics stay ImageNet's
