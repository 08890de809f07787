"""`pipe train`: train a recipe's stages (`pipe colorize` colours sketches with the checkpoints: pipeline/commands/colorize.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app, lazy_epilog
from pipeline.commands.common import DEVICE_PANEL, RUN_PANEL
from pipeline.console import console
from pipeline.errors import PipeError

TRAIN_PANEL = "Training"
SCHEDULE_PANEL = "Schedule and augmentation (default: the recipe's, under --preset)"


def _recipes_epilog() -> str:
    from train.recipes import RECIPES

    lines = ["[bold]Recipes[/] (--recipe) and their stages (`--show-config` prints every value with its source):\n\n"]
    for recipe in RECIPES.values():
        stages = ", ".join(
            f"{name} ({'+'.join(stage.inputs)} -> {'lines' if stage.target == 'line' else 'colour'}, {stage.size}px, batch {stage.batch_size}, "
            f"{f'{stage.epochs} epochs' if stage.epochs else f'{stage.steps:,} steps'})"
            for name, stage in recipe.stages.items()
        )
        lines.append(f"[bold]{recipe.name}[/]: {recipe.summary}. Stages: {stages}\n\n")
    return "".join(lines)


@app.command(cls=lazy_epilog(_recipes_epilog))
def train(
    stage: Annotated[str, typer.Argument(help="Which stage to train: draft, refine, or ldm (lee2020's Line Detection Model, trained first).")],
    root: Annotated[Optional[Path], typer.Argument(help="The dataset folder (after `pipe shard`): reads ROOT/shards/train, writes ROOT/runs/RUN. (not needed with --show-config)", show_default=False)] = None,
    recipe: Annotated[str, typer.Option(help="The published system to reproduce (see below).", rich_help_panel=TRAIN_PANEL)] = "xu2020",
    preset: Annotated[Optional[str], typer.Option(help="paper: the published schedule; quick: a short trial schedule (10,000 steps, milestones scaled), NOT the paper's. (default: paper, or the run's own with --resume)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    show_config: Annotated[bool, typer.Option("--show-config", help="Print the fully resolved configuration as JSON, every value with its source (document and section, or the assumption), and exit without training.", rich_help_panel=TRAIN_PANEL)] = False,
    steps: Annotated[Optional[int], typer.Option(min=1, help="Train until this step (counting steps of earlier runs with --resume). (default: the preset's)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Train for this many epochs instead of --steps: an epoch is ceil(train split samples / global batch) steps, the global batch being --batch-size times the processes.", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Base learning rate.", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    lr_schedule: Annotated[Optional[str], typer.Option(help="step (x gamma after each milestone), cosine or linear (down to 0 over the run), or constant.", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    lr_milestones: Annotated[Optional[str], typer.Option(help="Steps after which the step schedule multiplies the rate by --lr-gamma, comma-separated (e.g. 110000,183000); none for none.", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    lr_gamma: Annotated[Optional[float], typer.Option(help="The step schedule's factor at each milestone (0.1: divide by 10).", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(min=0, help="Linear warm-up from 0 over this many steps, before any schedule.", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    crop: Annotated[Optional[int], typer.Option(min=0, help="Random crop of this side (shard pixels) per sample and step, the same for its colour, line, hint and draft; 0: none.", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    flip: Annotated[Optional[bool], typer.Option("--flip/--no-flip", help="Random left-right flips (per sample, all its members alike).", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    label_flip: Annotated[Optional[float], typer.Option(help="Share of D's labels swapped (cheng2018: 0.10 by default, 0.05 also published).", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    critic_steps: Annotated[Optional[int], typer.Option(min=1, help="D steps per G step.", rich_help_panel=SCHEDULE_PANEL, show_default=False)] = None,
    # Not --run: torchrun would take it for an abbreviation of its own --run-path.
    name: Annotated[Optional[str], typer.Option(help="Run name: ROOT/runs/NAME holds checkpoints, samples, metrics and TensorBoard logs. (default: RECIPE-STAGE)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Images per step (per GPU under torchrun). (default: the recipe's)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    size: Annotated[Optional[int], typer.Option(min=16, help="Training resolution; shard images are resized on the device. (default: the recipe's)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    width: Annotated[Optional[float], typer.Option(min=0.01, help="Channel multiplier of both networks: 1 is the published size; less for quick trials. (default: 1, or what a resumed run was trained with)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    resume: Annotated[bool, typer.Option(help="Continue ROOT/runs/NAME from its last checkpoint, data stream included.", rich_help_panel=TRAIN_PANEL)] = False,
    overwrite: Annotated[bool, typer.Option(help="Start an existing ROOT/runs/NAME over from step 0: its checkpoints, samples, metrics and TensorBoard logs are deleted first.", rich_help_panel=TRAIN_PANEL)] = False,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, the data order and the dropout noise.", rich_help_panel=TRAIN_PANEL)] = 0,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.", rich_help_panel=DEVICE_PANEL)] = "auto",
    precision: Annotated[str, typer.Option(help="auto (bf16 autocast on CUDA, fp32 on CPU), fp32 or bf16.", rich_help_panel=DEVICE_PANEL)] = "auto",
    deterministic: Annotated[bool, typer.Option(help="Deterministic algorithms only (slower; makes resumed runs repeat an uninterrupted one exactly on CPU).", rich_help_panel=DEVICE_PANEL)] = False,
    compile_generator: Annotated[bool, typer.Option("--compile", help="torch.compile the generator (worth it on long GPU runs; the first steps are slow).", rich_help_panel=DEVICE_PANEL)] = False,
    synth: Annotated[str, typer.Option(help="device: draw each batch's hints and drafts on the training device from the schemes the shards record (new ones every step; the loader reads only colour and line); shards: read the shards' own hint and draft members.", rich_help_panel=TRAIN_PANEL)] = "device",
    jpeg_decoder: Annotated[str, typer.Option(help="JPEG members (pipe shard --jpeg): auto (the GPU's nvjpeg through torchvision when training on CUDA with torchvision installed, else OpenCV in the loader workers), opencv or nvjpeg.", rich_help_panel=DEVICE_PANEL)] = "auto",
    workers: Annotated[Optional[int], typer.Option(min=0, help="Loader worker processes decoding shards. (default: 4, or the CPUs this process may use if fewer)", rich_help_panel=RUN_PANEL, show_default=False)] = None,
    log_every: Annotated[int, typer.Option(min=1, help="Write losses and images/s (metrics.jsonl, TensorBoard) every N steps.", rich_help_panel=RUN_PANEL)] = 50,
    sample_every: Annotated[int, typer.Option(min=1, help="Write a sample grid (labelled columns line | hint | draft | output | truth; the output of the raw weights in training mode) every N steps.", rich_help_panel=RUN_PANEL)] = 500,
    checkpoint_every: Annotated[int, typer.Option(min=1, help="Save the whole training state every N steps (and at the end, and on Ctrl-C).", rich_help_panel=RUN_PANEL)] = 1000,
    record_keys: Annotated[bool, typer.Option(help="Write each step's sample keys to ROOT/runs/NAME/keys/rank<R>.txt (an audit of what every rank trained on).", rich_help_panel=RUN_PANEL)] = False,
    content_loss: Annotated[bool, typer.Option(help="Use the recipe's VGG16 content loss (needs torchvision's vgg16-397923af.pth, see `pipe weights list`); --no-content-loss trains without it and records that.", rich_help_panel=TRAIN_PANEL)] = True,
    line_loss: Annotated[bool, typer.Option(help="Use the recipe's line loss through the Line Detection Model (train it first: `pipe train ldm ROOT --recipe lee2020`).", rich_help_panel=TRAIN_PANEL)] = True,
    drafts_from: Annotated[Optional[Path], typer.Option(help="Refinement stages: drafts made on the fly by this trained draft checkpoint instead of the shards' synthesized ones.", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    feature_encoder: Annotated[Optional[Path], typer.Option(help="xu2020 refine: encode the draft with torchvision's ImageNet GoogLeNet from this file (googlenet-1378be20.pth) instead of a trained encoder.", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    vgg_weights: Annotated[Optional[Path], typer.Option(help="torchvision's VGG16 state dict. (default: the weights folder)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
    ldm_weights: Annotated[Optional[Path], typer.Option(help="LDM checkpoint to read (draft) or also write (ldm stage). (default: the weights folder's ldm.pt)", rich_help_panel=TRAIN_PANEL, show_default=False)] = None,
) -> None:
    """Train one stage of a recipe on the shards of ROOT, on the GPU when there is one.

    Under `torchrun --nproc-per-node N pipe train ...` every process trains on its own shards with
    the same number of steps, and only rank 0 writes logs and checkpoints.
    """
    from pipeline.executors import default_workers
    from pipeline.training import run_training, show_training_config
    from train.schedule import parse_milestones
    from train.trainer import TrainConfig

    if stage not in ("draft", "refine", "ldm"):
        raise PipeError(f"STAGE must be draft, refine or ldm, got {stage!r}")
    try:
        milestones = parse_milestones(lr_milestones) if lr_milestones is not None else None
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    schedule = dict(preset=preset, epochs=epochs, lr=lr, lr_schedule=lr_schedule, lr_milestones=milestones, lr_gamma=lr_gamma,
                    warmup_steps=warmup_steps, crop=crop, flip=flip, label_flip=label_flip, critic_steps=critic_steps)
    if show_config:
        settings = show_training_config(recipe, stage, root, steps=steps, batch_size=batch_size, size=size, **schedule)
        print(json.dumps(settings, indent=1))
        return
    if root is None:
        raise PipeError("ROOT is missing: give the dataset folder to train on (or --show-config to print the configuration)")
    config = TrainConfig(
        root=root.resolve(), recipe=recipe, stage=stage, run=name, steps=steps, batch_size=batch_size, size=size, width=width, **schedule,
        workers=min(4, default_workers()) if workers is None else workers, device=device, precision=precision, seed=seed, log_every=log_every, sample_every=sample_every,
        checkpoint_every=checkpoint_every, deterministic=deterministic, resume=resume, overwrite=overwrite, record_keys=record_keys, compile=compile_generator,
        content_loss=content_loss, line_loss=line_loss, vgg_weights=vgg_weights, ldm_weights=ldm_weights, drafts_from=drafts_from, feature_encoder=feature_encoder,
        synth=synth, jpeg_decoder=jpeg_decoder,
    )
    summary = run_training(config)
    if summary.last_step == summary.first_step:
        console.print(f"[green]nothing to do[/]: {summary.run_dir} is already at step {summary.last_step} (raise --steps or --epochs to train on)")
        return
    losses = ", ".join(f"{k} {v:.4g}" for k, v in summary.last_losses.items())
    console.print(
        f"trained steps {summary.first_step + 1}-{summary.last_step} in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.1f} images/s); last losses: {losses}\n"
        f"run folder: {summary.run_dir} (checkpoints/last.pt, samples/, metrics.jsonl, tb/)"
    )

