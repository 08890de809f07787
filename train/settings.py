"""A stage's resolved training settings: recipe values, a preset, the user's options, and each one's source.

`resolve_settings(recipe, stage, preset, options)` is the single source of truth for what a run
trains with: `pipe train --show-config` prints it, the trainer trains with it and records it in
config.json and every checkpoint, and `recipe_table_markdown` renders the README's recipe table
from it. Every value has an entry in `sources`: the document and section it comes from, "assumption:
why" where the document is silent, the preset's rule, or the command-line option that set it.

Presets: `paper` (default) is the published schedule where the document gives one; `quick` is a
short schedule for trying a recipe on one GPU in about an hour: QUICK_STEPS steps, with the paper's
LR milestones at the same fractions of the run. It is labelled as not the paper's everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from train.recipes import DOCUMENTS, RECIPES, StageRecipe, stage_recipe
from train.schedule import SCHEDULES

PRESETS = ("paper", "quick")
QUICK_STEPS = 10_000
PRESET_NOTES = {
    "paper": "paper: the published schedule and values where the document gives them (see sources; 'assumption' marks where it is silent)",
    "quick": f"quick: NOT the paper's schedule: a {QUICK_STEPS:,}-step trial run (LR milestones scaled to it) for trying the recipe on one GPU in about an hour",
}
# The settings a run records in config.json and its checkpoints (beside the trainer's own).
KEYS = (
    "recipe", "stage", "preset", "preset_note", "document", "inputs", "size", "crop", "flip", "batch_size", "optimizer", "lr", "betas",
    "lr_schedule", "lr_milestones", "lr_gamma", "warmup_steps", "steps", "epochs", "loss_weights", "gan_loss", "critic_steps",
    "label_flip", "label_flip_choices", "d_input_noise", "image_pool", "clip_weights", "d_condition", "content", "generator",
    "discriminator", "inference_dropout", "hints",
)


@dataclass(frozen=True)
class SettingOptions:
    """The user's command-line choices; None keeps the recipe's (or preset's) value."""

    size: int | None = None
    batch_size: int | None = None
    crop: int | None = None  # 0: no crop
    flip: bool | None = None
    lr: float | None = None
    lr_schedule: str | None = None
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float | None = None
    warmup_steps: int | None = None
    steps: int | None = None
    epochs: int | None = None
    label_flip: float | None = None
    critic_steps: int | None = None

    def given(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


OPTION_NAMES = {f.name: "--" + f.name.replace("_", "-") for f in fields(SettingOptions)}


def _loss_weights(recipe: StageRecipe) -> dict[str, float]:
    weights = {"gan": recipe.gan_weight if recipe.make_discriminator else 0.0, recipe.recon_loss: recipe.recon_weight,
               "content": recipe.content_weight, "line": recipe.line_weight, "guide": recipe.guide_weight}
    return {name: float(value) for name, value in weights.items() if value}


def _published(recipe_name: str, stage: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The stage's values as the recipe gives them, and their sources."""
    recipe = stage_recipe(recipe_name, stage)
    document = recipe.document
    has_d = recipe.make_discriminator is not None
    values: dict[str, Any] = {
        "recipe": recipe_name,
        "stage": stage,
        "document": DOCUMENTS.get(document, document),
        "inputs": list(recipe.inputs),
        "size": recipe.size,
        "crop": recipe.crop,
        "flip": recipe.flip,
        "batch_size": recipe.batch_size,
        "optimizer": recipe.optimizer,
        "lr": recipe.lr,
        "betas": list(recipe.betas) if recipe.optimizer == "adam" else None,
        "lr_schedule": recipe.lr_schedule,
        "lr_milestones": list(recipe.lr_milestones),
        "lr_gamma": recipe.lr_gamma,
        "warmup_steps": recipe.warmup_steps,
        "steps": recipe.steps,
        "epochs": recipe.epochs,
        "loss_weights": _loss_weights(recipe),
        "gan_loss": recipe.gan_loss if has_d else None,
        "critic_steps": recipe.generator_every if has_d else None,
        "label_flip": recipe.label_flip if has_d else None,
        "label_flip_choices": list(recipe.label_flip_choices),
        "d_input_noise": recipe.d_input_noise if has_d else None,
        "image_pool": recipe.image_pool if has_d else None,
        "clip_weights": recipe.clip_weights if has_d else None,
        "d_condition": (list(recipe.inputs if recipe.d_condition is None else recipe.d_condition)) if has_d else None,
        "content": {"layers": list(recipe.content_layers), "distance": recipe.content_distance} if recipe.content_weight else None,
        "generator": recipe.generator,
        "discriminator": recipe.discriminator if has_d else "none",
        "inference_dropout": recipe.inference_dropout,
        "hints": list(recipe.hints),
    }
    silent = f"assumption: {document} does not use it; pipe's default"
    sources = {
        "recipe": DOCUMENTS.get(document, document),
        "stage": f"{document} ({stage} stage)",
        "document": "the recipe's source document (one of the five documents the recipes reproduce)",
        "flip": f"assumption: {document} mentions no flipping; none",
        "label_flip": f"assumption: {document} mentions no label flipping; none",
        "label_flip_choices": recipe.sources.get("label_flip", f"assumption: {document} reports no alternatives"),
        "d_input_noise": f"assumption: {document} adds no noise to D's inputs; none",
        "image_pool": f"assumption: {document} mentions no image pool; none",
        "clip_weights": f"assumption: {document} clips no weights; none",
        "content": f"{document}: no content loss",
        "inference_dropout": f"assumption: {document} keeps no noise at inference; eval mode",
        "gan_loss": f"{document}: no adversarial loss" if not has_d else silent,
        "critic_steps": f"{document}: no discriminator" if not has_d else silent,
        "d_condition": f"{document}: no discriminator" if not has_d else silent,
    }
    sources.update(recipe.sources)
    if not has_d:
        for key in ("label_flip", "d_input_noise", "image_pool", "clip_weights", "gan_loss", "critic_steps", "d_condition"):
            sources[key] = f"{document}: no discriminator"
    if recipe.epochs is not None:
        sources.setdefault("steps", f"{sources.get('epochs')}: the length is in epochs")
    else:
        sources.setdefault("epochs", "the length is in steps")
    return values, sources


def resolve_settings(recipe: str, stage: str, preset: str = "paper", options: SettingOptions | None = None) -> dict[str, Any]:
    """The JSON-ready settings of a stage under a preset and the user's options, with `sources`.

    Raises ValueError naming the option for an unknown recipe, stage or preset, or values that do
    not fit together (both --steps and --epochs, milestones with a cosine schedule, ...).
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset {preset!r}: choose from {', '.join(PRESETS)}")
    options = options or SettingOptions()
    values, sources = _published(recipe, stage)
    values["preset"] = preset
    values["preset_note"] = PRESET_NOTES[preset]
    sources["preset"] = "option --preset" if preset != "paper" else "the default preset: the published schedule"
    sources["preset_note"] = sources["preset"]
    if preset == "quick":
        paper_steps = values["steps"]
        if values["lr_milestones"] and paper_steps:
            values["lr_milestones"] = [max(1, round(m * QUICK_STEPS / paper_steps)) for m in values["lr_milestones"]]
            sources["lr_milestones"] = f"quick preset, not the paper's: {sources['lr_milestones']} scaled from {paper_steps:,} to {QUICK_STEPS:,} steps"
        values["steps"], values["epochs"] = QUICK_STEPS, None
        sources["steps"] = (f"quick preset, not the paper's: {QUICK_STEPS:,} steps at the recipe's batch and size, 2-90 PFLOP by recipe "
                            "(counted with torch.utils.flop_counter): under an hour on one H200 from 25 TFLOP/s sustained (an estimate, not a measurement)")
        sources["epochs"] = "quick preset: the length is in steps"
    given = options.given()
    if "steps" in given and "epochs" in given:
        raise ValueError("--steps and --epochs: give one (the run's length in steps, or in passes over the train split)")
    for key, value in given.items():
        option = OPTION_NAMES[key]
        if key == "crop":
            value = value or None
        if key == "critic_steps":
            if values["critic_steps"] is None:
                raise ValueError(f"{option}: {recipe} {stage} trains no discriminator")
            if value < 1:
                raise ValueError(f"{option} must be >= 1, got {value}")
        if key == "label_flip":
            if values["label_flip"] is None:
                raise ValueError(f"{option}: {recipe} {stage} trains no discriminator")
            if values["gan_loss"] == "wgan" and value:
                raise ValueError(f"{option}: label flipping has no meaning for the Wasserstein loss of {recipe}")
            if not 0 <= value < 0.5:
                raise ValueError(f"{option} must be in [0, 0.5), got {value}")
        if key == "lr_milestones":
            value = list(value)
        values[key] = value
        sources[key] = f"option {option} (this run's choice, not the recipe's)"
    if "steps" in given:
        values["epochs"] = None
        sources["epochs"] = "the length is in steps (option --steps)"
    if "epochs" in given:
        values["steps"] = None
        sources["steps"] = "the length is in epochs (option --epochs): resolved from the train split's sample count when training starts"
    # A schedule follows from the options given: milestones ask for step decay, another kind drops them.
    if "lr_schedule" in given:
        if given["lr_schedule"] not in SCHEDULES:
            raise ValueError(f"--lr-schedule {given['lr_schedule']!r}: choose from {', '.join(SCHEDULES)}")
        if given["lr_schedule"] != "step" and values["lr_milestones"]:
            if "lr_milestones" in given:
                raise ValueError(f"--lr-milestones belong to --lr-schedule step, not {given['lr_schedule']}")
            values["lr_milestones"] = []
            sources["lr_milestones"] = f"none: option --lr-schedule {given['lr_schedule']}"
    elif values["lr_milestones"] and values["lr_schedule"] != "step":
        values["lr_schedule"] = "step"
        sources["lr_schedule"] = "step decay: option --lr-milestones"
    _check(values)
    values["sources"] = {key: sources[key] for key in KEYS}
    return {key: values[key] for key in (*KEYS, "sources")}


def _check(values: dict[str, Any]) -> None:
    for key in ("size", "batch_size", "steps", "epochs"):
        if values[key] is not None and values[key] < 1:
            raise ValueError(f"{OPTION_NAMES.get(key, key)} must be >= 1, got {values[key]}")
    if values["steps"] is None and values["epochs"] is None:
        raise ValueError("the run has no length: give --steps or --epochs")
    if not values["lr"] > 0:
        raise ValueError(f"--lr must be > 0, got {values['lr']}")
    if not 0 < values["lr_gamma"] <= 1:
        raise ValueError(f"--lr-gamma must be in (0, 1], got {values['lr_gamma']}")
    if values["warmup_steps"] < 0:
        raise ValueError(f"--warmup-steps must be >= 0, got {values['warmup_steps']}")
    milestones = values["lr_milestones"]
    if any(m < 1 for m in milestones) or milestones != sorted(set(milestones)):
        raise ValueError(f"--lr-milestones must be increasing step numbers >= 1, got {milestones}")
    if values["crop"] is not None and values["crop"] < 1:
        raise ValueError(f"--crop must be >= 1 (or 0 for none), got {values['crop']}")


def has_assumption(source: str) -> bool:
    return "assumption" in source


# ---------------------------------------------------------------------------- the README's table

def _number(value: float) -> str:
    """1e-4, 2e-4, 5e-5; 0.05, 100."""
    if value and value < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:g}"


def _count(steps: int) -> str:
    return f"{steps // 1000:,}K" if steps % 1000 == 0 and steps >= 1000 else f"{steps:,}"


def _marked(text: str, *sources: str) -> str:
    return text + ("\\*" if any(has_assumption(s) for s in sources) else "")


def table_row(settings: dict[str, Any]) -> list[str]:
    """One stage's cells of the recipe table (values marked \\* where a source says "assumption")."""
    src = settings["sources"]
    size = _marked(str(settings["size"]), src["size"])
    if settings["crop"]:
        size += " (crop " + _marked(str(settings["crop"]), src["crop"]) + ")"
    optimizer = "Adam" if settings["optimizer"] == "adam" else "RMSprop"
    optimizer = f"{optimizer} {_number(settings['lr'])}"
    if settings["betas"]:
        optimizer += " (" + ", ".join(_number(b) for b in settings["betas"]) + ")"
    optimizer = _marked(optimizer, src["optimizer"], src["lr"], src["betas"])
    if settings["lr_schedule"] == "step" and settings["lr_milestones"]:
        schedule = f"x{_number(settings['lr_gamma'])} at " + ", ".join(_count(m) for m in settings["lr_milestones"])
    else:
        schedule = settings["lr_schedule"]
    if settings["warmup_steps"]:
        schedule += f", warm-up {_count(settings['warmup_steps'])}"
    schedule = _marked(schedule, src["lr_schedule"], src["lr_milestones"])
    length = f"{settings['epochs']} epochs" if settings["epochs"] else f"{_count(settings['steps'])} steps"
    length = _marked(length, src["epochs"] if settings["epochs"] else src["steps"])
    names = {"gan": "GAN", "l1": "L1", "l2": "L2", "content": "VGG content", "line": "line (LDM)", "guide": "guide L1"}
    losses = _marked(" + ".join(f"{_number(w)} {names.get(name, name)}" for name, w in settings["loss_weights"].items()), src["loss_weights"])
    if settings["critic_steps"] is None:
        adversary = "none"
    else:
        seen = " + ".join([*settings["d_condition"], "image"])
        extras = [f"{settings['critic_steps']} D step per G step" if settings["critic_steps"] == 1 else f"{settings['critic_steps']} D steps per G step"]
        if settings["label_flip"]:
            extras.append(f"{settings['label_flip']:.0%} label flips")
        adversary = _marked(seen, src["d_condition"]) + "; " + _marked(", ".join(extras), src["critic_steps"], src["label_flip"])
    batch = _marked(str(settings["batch_size"]), src["batch_size"])
    return [f"`{settings['recipe']}`", settings["stage"], size, batch, optimizer, schedule, length, losses, adversary]


TABLE_HEADER = ["recipe", "stage", "size (crop)", "batch", "optimizer", "LR schedule", "length", "loss weights", "D sees; steps"]


def recipe_table_markdown(preset: str = "paper") -> str:
    """The README's recipe table: every recipe and stage under `preset`, from `resolve_settings`."""
    rows = [TABLE_HEADER, ["---"] * len(TABLE_HEADER)]
    for name, recipe in RECIPES.items():
        for stage in recipe.stages:
            rows.append(table_row(resolve_settings(name, stage, preset)))
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    lines.append("\\* pipe's assumption, wholly or in part, where the document is silent; "
                 "`pipe train STAGE --recipe NAME --show-config` prints every value with its source.")
    return "\n".join(lines) + "\n"
