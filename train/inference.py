"""Trained generators back from checkpoints, and their held-out L1 on the val shards."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from train.feature_encoder import attach_feature_encoder
from train.inputs import generator_input, resize_batch, target_image
from train.loader import LoaderConfig, device_batches, make_loader
from train.recipes import StageRecipe, stage_recipe


@dataclass
class LoadedGenerator:
    generator: nn.Module
    recipe: StageRecipe
    size: int
    config: dict
    step: int


def load_generator(path: Path, device: torch.device | str = "cpu", use_ema: bool = True) -> LoadedGenerator:
    """The generator of a `pipe train` checkpoint (its EMA by default), in eval mode on `device`."""
    payload = torch.load(path, map_location="cpu", weights_only=False) if Path(path).is_file() else None
    if payload is None:
        raise FileNotFoundError(f"checkpoint {path} not found")
    config = payload.get("extras", {}).get("config")
    if not config:
        raise ValueError(f"{path} is not a `pipe train` checkpoint (no recorded config)")
    recipe = stage_recipe(config["recipe"], config["stage"])
    generator = recipe.make_generator(recipe.in_channels, config["size"], config.get("width", 1.0))
    if config.get("feature_encoder"):
        attach_feature_encoder(generator, None)  # the checkpoint holds the encoder's weights
    if use_ema:
        state = {k.removeprefix("module."): v for k, v in payload["state"]["ema"].items() if k.startswith("module.")}
    else:
        state = payload["state"]["generator"]
    generator.load_state_dict(state)
    return LoadedGenerator(generator.to(device).eval(), recipe, config["size"], config, payload["step"])


@torch.no_grad()
def heldout_l1(generator: nn.Module, recipe: StageRecipe, shards: Path, size: int, device: torch.device | str = "cpu", batch_size: int = 16) -> float:
    """Mean absolute error in [-1, 1] units between the generator's output and the truth, over every val sample."""
    images = ("color", "line", *(("hint",) if any(i.startswith("hint") for i in recipe.inputs) else ()), *(("draft",) if "draft" in recipe.inputs else ()))
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
