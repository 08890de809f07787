"""Trained generators back from checkpoints, and their held-out L1 on the val shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from train.checkpoint import read_checkpoint
from train.ema import DEFAULT_EMA_DECAY, warm_after
from train.feature_encoder import attach_feature_encoder
from train.inputs import generator_input, resize_batch, target_image
from train.loader import LoaderConfig, device_batches, make_loader
from train.recipes import StageRecipe, stage_recipe


WEIGHTS = ("auto", "ema", "raw")


@dataclass
class LoadedGenerator:
    generator: nn.Module
    recipe: StageRecipe
    size: int
    config: dict
    step: int
    weights: str = "ema"  # which of the checkpoint's generators: "ema" (the moving average) or "raw"

    @property
    def name(self) -> str:
        """`recipe stage`, as the user trained it."""
        return f"{self.config['recipe']} {self.config['stage']}"


def chosen_weights(weights: str, step: int, config: dict) -> str:
    """"ema" or "raw": `weights` itself, or for "auto" the EMA once it has warmed up (step >= warm_after(decay))."""
    if weights not in WEIGHTS:
        raise ValueError(f"--weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    if weights != "auto":
        return weights
    return "ema" if step >= warm_after(config.get("ema_decay", DEFAULT_EMA_DECAY)) else "raw"


def load_generator(path: Path, device: torch.device | str = "cpu", weights: str = "auto") -> LoadedGenerator:
    """The generator of a `pipe train` checkpoint in eval mode on `device`: its EMA (`weights="ema"`),
    the trained weights themselves ("raw"), or ("auto") the EMA once it has warmed up, raw before."""
    payload = read_checkpoint(path)
    config = payload.get("extras", {}).get("config")
    if not config:
        raise ValueError(f"{path} is not a `pipe train` checkpoint (no recorded config)")
    recipe = stage_recipe(config["recipe"], config["stage"])
    revision = config.get("generator_revision", 1)
    if revision != recipe.generator_revision:
        raise ValueError(f"{path} was trained by an earlier pipe version of the {config['recipe']} {config['stage']} recipe (generator revision {revision}, "
                         f"now {recipe.generator_revision}: {recipe.revision_note}): this version no longer builds its generator; train it again")
    generator = recipe.make_generator(recipe.in_channels, config["size"], config.get("width", 1.0))
    if config.get("feature_encoder"):
        attach_feature_encoder(generator, None)  # the checkpoint holds the encoder's weights
    chosen = chosen_weights(weights, payload["step"], config)
    if chosen == "ema":
        state = {k.removeprefix("module."): v for k, v in payload["state"]["ema"].items() if k.startswith("module.")}
    else:
        state = payload["state"]["generator"]
    generator.load_state_dict(state)
    return LoadedGenerator(generator.to(device).eval(), recipe, config["size"], config, payload["step"], chosen)


def load_stage(path: Path, role: str, device: torch.device | str = "cpu", weights: str = "auto") -> LoadedGenerator:
    """load_generator, refusing a checkpoint that cannot serve as `role`: "draft" (colours a sketch,
    takes no draft) or "refine" (takes the draft's output); the message says where it belongs."""
    loaded = load_generator(path, device, weights)
    if loaded.recipe.target != "color":
        raise ValueError(f"{path} is a Line Detection Model ({loaded.name}), not a colourizer: pass a {role} stage's checkpoint as --{role}")
    takes_draft = "draft" in loaded.recipe.inputs
    if role == "draft" and takes_draft:
        raise ValueError(f"{path} is a refine checkpoint ({loaded.name}): pass it as --refine, with a draft checkpoint as --draft")
    if role == "refine" and not takes_draft:
        raise ValueError(f"{path} is a draft checkpoint ({loaded.name}), it takes no draft: pass it as --draft")
    return loaded


@torch.no_grad()
def heldout_l1(generator: nn.Module, recipe: StageRecipe, shards: Path, size: int, device: torch.device | str = "cpu", batch_size: int = 16) -> float:
    """Mean absolute error in [-1, 1] units between the generator's output and the truth, over every val sample."""
    images = ("color", "line", *(("hint",) if recipe.takes_hints else ()), *(("draft",) if "draft" in recipe.inputs else ()))
    loader = make_loader(LoaderConfig(shards=(str(shards),), batch_size=batch_size, workers=0, shuffle_buffer=0, shuffle_shards=False, images=images, with_palette="palette" in recipe.inputs))
    was_training = generator.training
    generator.eval()
    total, count = 0.0, 0
    for batch in device_batches(loader, device):
        batch = resize_batch(batch, size)
        output = generator(generator_input(batch, recipe.inputs))
        total += (output - target_image(batch, recipe.target)).abs().mean(dim=(1, 2, 3)).sum().item()
        count += output.shape[0]
    generator.train(was_training)
    if count == 0:
        raise ValueError(f"no samples in {shards}")
    return total / count
