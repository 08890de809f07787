"""The training loop every recipe shares: `pipe train draft|refine ROOT --recipe NAME`.

What a run trains with is `train.settings.resolve_settings` of its recipe, stage, preset and options
(size, crop, batch, optimizer, LR schedule, length in steps or epochs, losses, D's condition). Each
step first crops and flips the batch (one seeded draw per sample, the same for all its members, on
the device), brings it to the training size (hints max-pooled, never averaged: `train.inputs`), sets
the step's learning rate from the schedule (a pure function of the step), then takes a
discriminator step and a generator step (two small functions), under the run's autocast precision;
the generator's exponential moving average is updated after each step. Every
`checkpoint_every` steps the whole state (models, optimizers, EMA, step, RNG, the resolved config and
LR schedule) goes atomically to runs/<run>/checkpoints/last.pt; `resume` continues from it with the
data stream at the same position and the recorded settings and schedule, so the next losses and
learning rates equal an uninterrupted run's (CPU, deterministic mode). Logs:
metrics.jsonl and TensorBoard scalars every `log_every` steps, a sample grid (labelled columns line |
hint | draft | output | truth; the output of the raw weights in training mode) every `sample_every`
steps as samples/step_NNNNNNN.png and in TensorBoard. A run folder that already holds a run is trained
again only with `resume` or `overwrite`. Under
`torchrun` each rank reads its own shards, steps are equal across ranks, and only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from manifests.layout import DatasetLayout
from manifests.shards import split_keys
from train.augment import augment_batch, draw_augment
from train.checkpoint import read_checkpoint, restore_checkpoint, save_checkpoint
from train.device import resolve_device
from train.errors import TrainingError
from train.feature_encoder import attach_feature_encoder
from train.inference import load_generator
from train.ema import DEFAULT_EMA_DECAY, make_ema
from train.inputs import generator_input, resize_batch, target_image
from train.batch_synth import SYNTH_CHOICES, BatchSynth
from train.jpeg_device import JPEG_DECODERS, jpeg_on_device
from train.loader import LoaderConfig, device_batches, make_loader
from train.losses import ImagePool, adversarial_loss, clip_weights
from train.networks.layers import init_weights
from train.networks.vgg import content_loss
from train.networks.attention_unet import GuidedOutput
from train.precision import PRECISIONS, autocast, resolve_precision
from train.recipes import StageRecipe, stage_recipe
from train.run_logs import RunLogs, named_os_errors, write_text
from train.sample_grid import SampleRows, sample_grid
from train.schedule import LrSchedule, steps_per_epoch
from train.settings import PRESET_NOTES, SettingOptions, resolve_settings

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TrainConfig:
    root: Path
    recipe: str
    stage: str
    run: str | None = None  # default: <recipe>-<stage>
    # The run's length: train until this step, or for this many epochs (passes over the train split:
    # ceil(samples / global batch) steps each); default: the preset's (or, resuming, the recorded one).
    steps: int | None = None
    epochs: int | None = None
    # "paper" (the published schedule) or "quick" (a short trial, not the paper's); None: paper, or the recorded one.
    preset: str | None = None
    batch_size: int | None = None  # default: the recipe's
    size: int | None = None  # default: the recipe's resolution
    # The LR schedule (train.schedule) and augmentation; None: the recipe's (resuming: the recorded ones).
    lr: float | None = None
    lr_schedule: str | None = None
    lr_milestones: tuple[int, ...] | None = None
    lr_gamma: float | None = None
    warmup_steps: int | None = None
    crop: int | None = None  # 0: no crop
    flip: bool | None = None
    label_flip: float | None = None
    critic_steps: int | None = None
    width: float | None = None  # channel multiplier of both networks (None: 1, as published, or a resumed run's own)
    workers: int = 4
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    shuffle_buffer: int = 256
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    ema_decay: float = DEFAULT_EMA_DECAY
    deterministic: bool = False
    resume: bool = False
    # Append every step's sample keys to runs/RUN/keys/rank<R>.txt (which samples each rank saw).
    record_keys: bool = False
    # torch.compile the generator (the discriminators here need no double backward, but stay eager).
    compile: bool = False
    # Recipes with a content or line loss need feature networks from files; these turn them off.
    content_loss: bool = True
    line_loss: bool = True
    vgg_weights: Path | None = None  # default: the weights folder (pipe weights list)
    ldm_weights: Path | None = None
    # Refinement stages: make each batch's drafts with this trained draft checkpoint (its EMA
    # generator) instead of reading the shards' synthesized drafts (cheng2018's half-trained drafts).
    drafts_from: Path | None = None
    # xu2020 refinement: encode the draft with torchvision's ImageNet GoogLeNet from this file.
    feature_encoder: Path | None = None
    # Start an existing run (one with a checkpoint or metrics) over: its outputs are deleted first.
    overwrite: bool = False
    # "device": hints and drafts drawn per batch on the device from the shards' recorded schemes
    # (train.batch_synth; the loader reads colour and line only); "shards": the shards' hint and draft members.
    synth: str = "device"
    # JPEG members: "auto" decodes them on the GPU (torchvision's nvjpeg) when training on CUDA with
    # torchvision installed, else in the loader workers with OpenCV; "opencv" or "nvjpeg" choose.
    jpeg_decoder: str = "auto"

    def __post_init__(self) -> None:
        # Every choice is checked here, before a device, a network or a run folder is touched.
        for option, value, choices in (("--synth", self.synth, SYNTH_CHOICES), ("--precision", self.precision, PRECISIONS),
                                       ("--jpeg-decoder", self.jpeg_decoder, JPEG_DECODERS)):
            if value not in choices:
                raise TrainingError(f"{option} {value!r}: choose from {', '.join(choices)}")
        if self.run is not None and (not self.run or self.run.startswith(".") or any(c in self.run for c in "/\\")):
            raise TrainingError(f"--name {self.run!r}: a run name is one folder name under ROOT/runs (no '/', not starting with '.')")

    @property
    def run_name(self) -> str:
        return self.run or f"{self.recipe}-{self.stage}"

    @property
    def run_dir(self) -> Path:
        return DatasetLayout(self.root).run(self.run_name)


@dataclass
class RunSummary:
    run_dir: Path
    first_step: int
    last_step: int
    seconds: float
    images_per_second: float
    last_losses: dict[str, float] = field(default_factory=dict)


# What a run writes into its folder, deleted by --overwrite (config.json is rewritten anyway).
RUN_OUTPUTS = ("checkpoints", "samples", "metrics.jsonl", "tb", "keys")


def run_exists(run_dir: Path) -> bool:
    """A run folder holds a run once it has a checkpoint or metrics (an empty folder does not)."""
    metrics = run_dir / "metrics.jsonl"
    return (run_dir / "checkpoints" / "last.pt").is_file() or (metrics.is_file() and metrics.stat().st_size > 0)


# The recorded settings a resumed run cannot change, and the option (or argument) that sets each: the
# networks' shapes depend on them, or (the batch size) the data stream, whose position is counted in batches.
FIXED_OPTIONS = {"recipe": "--recipe", "stage": "STAGE", "size": "--size", "width": "--width", "feature_encoder": "--feature-encoder",
                 "batch_size": "--batch-size"}
# Settings a resumed run takes from its checkpoint unless the user gives them again.
RECORDED_OPTIONS = ("size", "batch_size", "crop", "flip", "lr", "lr_schedule", "lr_milestones", "lr_gamma", "warmup_steps", "label_flip", "critic_steps")
SCHEDULE_OPTIONS = {"kind": "--lr-schedule", "base_lr": "--lr", "milestones": "--lr-milestones", "gamma": "--lr-gamma", "warmup_steps": "--warmup-steps", "decay_steps": "--steps"}


def _same_shapes(key: str, saved: Any, current: Any) -> bool:
    """Whether two values of a recorded setting give the same shapes (the feature encoder's file
    only matters by being given: its weights are in the checkpoint)."""
    return bool(saved) == bool(current) if key == "feature_encoder" else saved == current


def _shown(value: Any) -> str:
    return "none" if value is None else str(value)


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP and torch.compile wrappers (what checkpoints store)."""
    if isinstance(module, DistributedDataParallel):
        module = module.module
    return getattr(module, "_orig_mod", module)


def _size_multiple(generator: nn.Module) -> int:
    """What the generator's input height and width must be multiples of (its config says, where it has one)."""
    config = getattr(generator, "config", None)
    return int(getattr(config, "size_multiple", None) or getattr(generator, "size_multiple", None) or 1)


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        try:
            self.recipe: StageRecipe = stage_recipe(config.recipe, config.stage)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        self.config = config
        if config.resume and config.overwrite:
            raise TrainingError("--resume and --overwrite: choose one (continue the run, or start it over)")
        if not config.resume and not config.overwrite and run_exists(config.run_dir):
            raise TrainingError(f"{config.run_dir} already holds a run: use --resume to continue it, or --overwrite to start it over from step 0")
        self.device = resolve_device(config.device)
        self.dtype = resolve_precision(config.precision, self.device)
        self.payload = self._read_resumed() if config.resume else None
        self.settings = self._resolve_settings()
        self.width = self._resolve_width()
        self.size = self.settings["size"]
        self.batch_size = self.settings["batch_size"]
        self.critic_steps = self.settings["critic_steps"] or 1
        # The LR schedule: built when training starts (cosine and linear decay over the run's length),
        # or restored from the checkpoint; None leaves the optimizers' rates alone (benchmarks).
        self.schedule: LrSchedule | None = None
        self._target: int | None = None
        self._steps_per_epoch: int | None = None
        self.current_lr: float | None = None
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        self.rank = _rank()
        if config.deterministic:
            torch.use_deterministic_algorithms(True)
        # The same seed gives the same initial weights on every rank.
        torch.manual_seed(config.seed)
        in_channels = self.recipe.in_channels
        self.generator = self.recipe.make_generator(in_channels, self.size, self.width).to(self.device)
        multiple = _size_multiple(self.generator)
        if self.size % multiple:
            fits = sorted({max(multiple, self.size // multiple * multiple), (self.size // multiple + 1) * multiple})
            raise TrainingError(f"--size {self.size}: the {config.recipe} {config.stage} generator needs a multiple of {multiple} "
                                f"(try --size {' or '.join(map(str, fits))})")
        make_d = self.recipe.make_discriminator
        self.discriminator = make_d(self.recipe.d_in_channels, self.width).to(self.device) if make_d else None
        # pix2pix's initialization, or the network's own (He's, for those without normalization layers).
        self.generator.apply(getattr(self.generator, "weight_init", init_weights))
        if config.feature_encoder is not None:
            # After the initialization, which must not touch the pretrained weights.
            attach_feature_encoder(self.generator, config.feature_encoder, fine_tune=self.recipe.fine_tune_encoder)
            self.generator.to(self.device)
        if self.discriminator is not None:
            self.discriminator.apply(init_weights)
        self.vgg, self.ldm = self._feature_networks()
        self.draft_source = self._draft_source()
        self.batch_synth = self._batch_synth()
        try:
            self.jpeg_on_device = jpeg_on_device(config.jpeg_decoder, self.device)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        self.ema = make_ema(self.generator, config.ema_decay)
        # channels_last lets cuDNN pick its fastest convolution kernels on tensor cores.
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        for module in filter(None, (self.generator, self.discriminator)):
            module.to(memory_format=self.memory_format)
        self.opt_g = self._optimizer(self.generator)
        self.opt_d = self._optimizer(self.discriminator) if self.discriminator is not None else None
        self.pool = ImagePool(self.recipe.image_pool, random.Random(config.seed)) if self.recipe.image_pool else None
        # Per-rank randomness (dropout, label flips) differs across ranks but is reproducible.
        torch.manual_seed(config.seed * 1000 + self.rank + 1)
        self.step = 0
        if self.payload is not None:
            self._resume()
        if config.compile:
            self.generator = torch.compile(self.generator)
        if self.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.generator = DistributedDataParallel(self.generator, device_ids=device_ids)
            if self.discriminator is not None:
                self.discriminator = DistributedDataParallel(self.discriminator, device_ids=device_ids)
        self.logs: RunLogs | None = None
        # The grids' rows: the first distinct samples the run trains on, up to 4 (no more than a batch),
        # drawn when training starts (`_draw_sample_rows`).
        self.sample_rows = SampleRows(min(4, self.batch_size))

    def _read_resumed(self) -> dict:
        """The checkpoint a resumed run continues (read once: its settings decide the networks' sizes)."""
        path = self.checkpoint_path()
        if not path.is_file():
            raise TrainingError(f"--resume: no checkpoint at {path}; start the run without --resume first")
        try:
            return read_checkpoint(path, map_location=self.device)
        except ValueError as exc:
            raise TrainingError(f"--resume: {exc}") from None

    def _resolve_settings(self) -> dict:
        """The run's settings: the recipe under the preset, with the user's options; a resumed run takes
        what it recorded (size, batch, crop, LR schedule, length, ...) for every option not given again."""
        config = self.config
        given = {key: getattr(config, key) for key in (*RECORDED_OPTIONS, "steps", "epochs")}
        recorded_sources: dict[str, str] = {}
        preset = config.preset
        saved = (self.payload["extras"].get("config") or {}) if self.payload is not None else {}
        # Another recipe or stage than the checkpoint's: _check_resumable names the mismatch.
        if self.payload is not None and (saved.get("recipe"), saved.get("stage")) == (config.recipe, config.stage):
            settings = saved.get("settings") or {}
            preset = preset or settings.get("preset")
            for key in RECORDED_OPTIONS:
                if given[key] is None and key in settings:
                    given[key] = tuple(settings[key]) if key == "lr_milestones" else settings[key]
                    recorded_sources[key] = settings.get("sources", {}).get(key, "recorded by the run")
            if given["crop"] is None and "crop" in settings and settings["crop"] is None:
                given["crop"] = 0
            for key in ("size", "batch_size"):  # checkpoints from before settings recorded these alone
                if given[key] is None and saved.get(key) is not None:
                    given[key] = saved[key]
                    recorded_sources[key] = "recorded by the run"
            if given["steps"] is None and given["epochs"] is None:
                given["steps"], given["epochs"] = (settings.get("steps"), settings.get("epochs")) if settings else (saved.get("steps"), None)
                recorded_sources.update({k: settings.get("sources", {}).get(k, "recorded by the run") for k in ("steps", "epochs")})
        try:
            settings = resolve_settings(config.recipe, config.stage, preset or "paper", SettingOptions(**given))
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        for key, source in recorded_sources.items():
            settings["sources"][key] = source
        return settings

    def _resolve_width(self) -> float:
        """The networks' channel multiplier: the one given, else a resumed run's recorded one, else 1."""
        if self.config.width is not None:
            return self.config.width
        saved = (self.payload["extras"].get("config") or {}) if self.payload is not None else {}
        return float(saved.get("width") or 1.0)

    def _draft_source(self):
        if self.config.drafts_from is None:
            return None
        if "draft" not in self.recipe.inputs:
            raise TrainingError(f"--drafts-from: {self.config.recipe} {self.config.stage} takes no draft")
        try:
            source = load_generator(self.config.drafts_from, self.device, weights="ema")
        except (FileNotFoundError, ValueError) as exc:
            raise TrainingError(f"--drafts-from: {exc}") from None
        if "draft" in source.recipe.inputs or source.recipe.target != "color":
            raise TrainingError(f"--drafts-from: {self.config.drafts_from} is a {source.name} checkpoint, not a draft stage's")
        return source

    def _batch_synth(self) -> BatchSynth | None:
        """The on-device hint and draft draws (--synth device), when the shards record schemes to draw from."""
        settings = DatasetLayout(self.config.root).shard_config
        if self.config.synth != "device" or not settings.is_file():
            return None
        try:
            synth = BatchSynth.from_shards(self.config.root, self.config.seed)
        except (OSError, ValueError) as exc:
            raise TrainingError(f"--synth device: {exc}") from None
        return synth if self.draws_hints(synth) or self.draws_drafts(synth) else None

    def needs_hint(self) -> bool:
        return self.recipe.takes_hints or (self.draft_source is not None and self.draft_source.recipe.takes_hints)

    def draws_hints(self, synth: BatchSynth | None = None) -> bool:
        """Whether each batch's hints are drawn on the device rather than read from the shards."""
        synth = synth or self.batch_synth
        return synth is not None and synth.draws_hints and self.needs_hint()

    def draws_drafts(self, synth: BatchSynth | None = None) -> bool:
        """Whether each batch's drafts are drawn on the device (synthesized artifacts, not a draft model's)."""
        synth = synth or self.batch_synth
        return synth is not None and synth.draws_drafts and "draft" in self.recipe.inputs and self.draft_source is None

    @torch.no_grad()
    def drafts_for(self, batch: dict) -> torch.Tensor:
        """The draft generator's colourings of the batch, in [0, 1] at this stage's size."""
        source = self.draft_source
        draft = source.generator(generator_input(resize_batch(batch, source.size), source.recipe.inputs))
        draft = (draft.float() + 1) / 2
        if draft.shape[-1] != self.size:
            draft = F.interpolate(draft, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return draft.clamp(0, 1)

    def _feature_networks(self) -> tuple[nn.Module | None, nn.Module | None]:
        """VGG16 for the content loss and the LDM for the line loss, when the recipe uses them."""
        from extractors.ldm import load_ldm
        from extractors.weights import WeightsMissing, require_weights
        from train.networks.vgg import VGG16Features

        vgg = ldm = None
        try:
            if self.recipe.content_weight and self.config.content_loss:
                vgg = VGG16Features(self.recipe.content_layers).load_torchvision(self.config.vgg_weights).to(self.device)
            if self.recipe.line_weight and self.config.line_loss:
                ldm = load_ldm(require_weights("ldm", self.config.ldm_weights), self.device).eval().requires_grad_(False)
        except WeightsMissing as exc:
            flag = "--no-content-loss" if vgg is None and self.recipe.content_weight and self.config.content_loss else "--no-line-loss"
            raise TrainingError(f"{exc}; or train without that loss: {flag}") from None
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        return vgg, ldm

    def _optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        optimizer, lr = self.settings["optimizer"], self.settings["lr"]
        if optimizer == "rmsprop":
            return torch.optim.RMSprop(module.parameters(), lr=lr)
        if optimizer == "adam":
            return torch.optim.Adam(module.parameters(), lr=lr, betas=tuple(self.settings["betas"]), fused=self.device.type == "cuda")
        raise ValueError(f"unknown optimizer {optimizer!r}")

    # ------------------------------------------------------------------ state
    def modules(self) -> dict[str, Any]:
        modules = {"generator": _unwrap(self.generator), "ema": self.ema, "opt_g": self.opt_g}
        if self.discriminator is not None:
            modules.update(discriminator=_unwrap(self.discriminator), opt_d=self.opt_d)
        if self.pool is not None:
            modules["image_pool"] = self.pool
        return modules

    def checkpoint_path(self) -> Path:
        return DatasetLayout(self.config.root).run_checkpoint(self.config.run_name)

    def _resume(self) -> None:
        path = self.checkpoint_path()
        payload, self.payload = self.payload, None
        try:
            self._check_resumable(path, payload["extras"].get("config") or {})
            info = restore_checkpoint(path, payload, self.modules())
        except ValueError as exc:
            raise TrainingError(f"--resume: {exc}") from None
        self.step = info["step"]
        self._recorded_schedule = payload["extras"].get("schedule")
        if self._recorded_schedule is None and not self._schedule_given():
            # A checkpoint from before LR schedules trained at its optimizer's constant rate: keep it.
            lr = self.opt_g.param_groups[0]["lr"]
            self.settings.update(lr=lr, lr_schedule="constant", lr_milestones=[], warmup_steps=0)
            for key in ("lr", "lr_schedule", "lr_milestones", "warmup_steps"):
                self.settings["sources"][key] = "recorded: the run began before LR schedules, at this constant rate"

    def _schedule_given(self) -> bool:
        return any(getattr(self.config, key) is not None for key in ("lr", "lr_schedule", "lr_milestones", "lr_gamma", "warmup_steps"))

    def _check_resumable(self, path: Path, saved: dict) -> None:
        """Raise TrainingError naming the first option whose value changes the networks' shapes or the
        batch size (what `resolved_config` recorded in the checkpoint against this run's), or saying that the
        checkpoint comes from an older revision of the recipe, whose networks this version no longer builds."""
        config = self.config
        revision = saved.get("recipe_revision", 1)
        if saved.get("recipe", config.recipe) == config.recipe and saved.get("stage", config.stage) == config.stage and revision != self.recipe.revision:
            raise TrainingError(
                f"{path} was trained by an earlier pipe version of the {config.recipe} {config.stage} recipe (revision {revision}, now "
                f"{self.recipe.revision}: {self.recipe.revision_note}), so it cannot resume: train a new run (--name) or start this one over (--overwrite)"
            )
        current = {"recipe": config.recipe, "stage": config.stage, "size": self.size, "width": self.width, "feature_encoder": config.feature_encoder,
                   "batch_size": self.batch_size}
        for key, value in current.items():
            if key not in saved or _same_shapes(key, saved[key], value):
                continue
            option, was, now = FIXED_OPTIONS[key], _shown(saved[key]), _shown(value)
            raise TrainingError(f"{path} was trained with {option} {was}, this run has {option} {now}: resume with {option} {was}, or train a new run (--name)")

    def _clear_run_dir(self) -> None:
        """--overwrite: delete the run's checkpoints, samples, metrics, TensorBoard logs and key records."""
        for name in RUN_OUTPUTS:
            target = self.config.run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def _save(self) -> None:
        if self.rank != 0:
            return
        if self.recipe.target == "line":
            self._save_ldm()
        extras = {"config": self.resolved_config(), "loader_position": {"batches": self.step, "workers": self.config.workers, "batch_size": self.batch_size},
                  "schedule": self.schedule.to_dict() if self.schedule is not None else None}
        save_checkpoint(self.checkpoint_path(), self.step, self.modules(), extras)

    def _save_ldm(self) -> None:
        """An LDM run also writes the model in the extractors' format: RUN/ldm.pt and the weights folder's ldm.pt."""
        from extractors.ldm import save_ldm
        from extractors.weights import default_weights_path

        ldm = self.ema.module.ldm
        extra = {"trained_by": "pipe train ldm", "step": self.step, "run": str(self.config.run_dir)}
        save_ldm(ldm, self.config.run_dir / "ldm.pt", extra)
        save_ldm(ldm, self.config.ldm_weights or default_weights_path("ldm"), extra)

    def resolved_config(self) -> dict:
        data = {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in asdict(self.config).items()}
        data.update(
            size=self.size, batch_size=self.batch_size, width=self.width, inputs=list(self.recipe.inputs), target=self.recipe.target,
            precision_dtype=str(self.dtype), device_type=self.device.type,
            content_loss_active=self.vgg is not None, line_loss_active=self.ldm is not None,
            preset=self.settings["preset"], preset_note=PRESET_NOTES[self.settings["preset"]], recipe_revision=self.recipe.revision, generator_revision=self.recipe.generator_revision,
            settings=self.settings, target_steps=self._target, steps_per_epoch=self._steps_per_epoch,
            lr_schedule_resolved=self.schedule.to_dict() if self.schedule is not None else None,
        )
        return data

    # ------------------------------------------------------------------ length and learning rate
    def world_size(self) -> int:
        return dist.get_world_size() if self.distributed and dist.is_initialized() else 1

    def target_steps(self) -> int:
        """The step the run trains to: --steps, or --epochs times the steps of one pass over the train
        split (ceil(samples / (batch per process x processes)))."""
        if self._target is None:
            if self.settings["steps"] is not None:
                self._target = int(self.settings["steps"])
            else:
                folder = DatasetLayout(self.config.root).shard_split("train")
                try:
                    samples = len(split_keys(folder))
                except FileNotFoundError as exc:
                    raise TrainingError(str(exc)) from None
                if samples == 0:
                    raise TrainingError(f"no shards in {folder}: --epochs counts the train split's samples; run `pipe shard {self.config.root}` first")
                self._steps_per_epoch = steps_per_epoch(samples, self.batch_size * self.world_size())
                self._target = int(self.settings["epochs"]) * self._steps_per_epoch
        return self._target

    def plan(self) -> int:
        """Resolve the run's target step and its LR schedule (raising TrainingError for a resume that
        changes the recorded schedule) before anything is written; returns the target."""
        target = self.target_steps()
        if self.schedule is None:
            self.schedule = self.build_schedule()
        return target

    def build_schedule(self) -> LrSchedule:
        """The run's LR schedule; a resumed run's must be the one it recorded (its decay horizon included)."""
        settings = self.settings
        recorded = getattr(self, "_recorded_schedule", None)
        kind = settings["lr_schedule"]
        horizon = None
        if kind in ("cosine", "linear"):
            horizon = recorded["decay_steps"] if recorded and recorded.get("kind") == kind else max(1, self.target_steps() - settings["warmup_steps"])
        try:
            schedule = LrSchedule(kind, settings["lr"], tuple(settings["lr_milestones"]), settings["lr_gamma"], settings["warmup_steps"], horizon)
        except ValueError as exc:
            raise TrainingError(str(exc)) from None
        if recorded:
            saved = LrSchedule.from_dict(recorded)
            for key, option in SCHEDULE_OPTIONS.items():
                was, now = getattr(saved, key), getattr(schedule, key)
                if was != now:
                    raise TrainingError(f"{self.checkpoint_path()} was trained with the LR schedule's {key} {was}, this run has {now} ({option}): "
                                        "resume without changing the schedule, or train a new run (--name)")
            schedule = saved
        return schedule

    def _apply_lr(self, step: int) -> float:
        lr = self.schedule.lr_at(step)
        for optimizer in filter(None, (self.opt_g, self.opt_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr
        return lr

    # ------------------------------------------------------------------ steps
    def discriminator_step(self, condition: torch.Tensor | None, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """One update of D on real and generated pairs (one forward over both: DDP sees one call);
        `condition` is what D sees beside the image (None: the image alone)."""
        recipe = self.recipe
        self._discriminator_trainable(True)
        self.opt_d.zero_grad(set_to_none=True)
        fake_pairs = _joined(condition, fake.detach().to(real.dtype))
        if self.pool is not None:
            fake_pairs = self.pool.query(fake_pairs)
        pairs = self._noisy(torch.cat([fake_pairs, _joined(condition, real)]))
        flip = self.settings["label_flip"] or 0.0
        with autocast(self.device, self.dtype):
            fake_logits, real_logits = self.discriminator(pairs).float().chunk(2)
            loss_fake = adversarial_loss(recipe.gan_loss, fake_logits, real=False, flip=flip)
            loss_real = adversarial_loss(recipe.gan_loss, real_logits, real=True, flip=flip)
            loss = 0.5 * (loss_fake + loss_real)
        loss.backward()
        self.opt_d.step()
        if recipe.clip_weights:
            clip_weights(_unwrap(self.discriminator), recipe.clip_weights)
        return {"d_real": loss_real.item(), "d_fake": loss_fake.item()}

    def generator_step(self, condition: torch.Tensor | None, real: torch.Tensor, fake: torch.Tensor, guides: list[torch.Tensor] = ()) -> dict[str, float]:
        """One update of G: fool D on (condition, fake) (`condition`: D's, None for the image alone),
        stay close to the truth (and so do its guide images)."""
        recipe = self.recipe
        self.opt_g.zero_grad(set_to_none=True)
        losses: dict[str, float] = {}
        with autocast(self.device, self.dtype), self._discriminator_local():
            recon = (F.mse_loss if recipe.recon_loss == "l2" else F.l1_loss)(fake.float(), real)
            loss = recipe.recon_weight * recon
            if self.vgg is not None:
                content = content_loss(self.vgg, (fake.float() + 1) / 2, (real + 1) / 2, recipe.content_distance)
                loss = loss + recipe.content_weight * content
                losses["g_content"] = content.item()
            if self.ldm is not None:
                lines = self._ldm_lines(fake.float())
                with torch.no_grad():
                    truth_lines = self._ldm_lines(real)
                line = F.l1_loss(lines, truth_lines)
                loss = loss + recipe.line_weight * line
                losses["g_line"] = line.item()
            for index, guide in enumerate(guides):
                guide_loss = F.l1_loss(guide.float(), F.interpolate(real, size=guide.shape[-2:], mode="area"))
                loss = loss + recipe.guide_weight * guide_loss
                losses[f"g_guide{index + 1}"] = guide_loss.item()
            if self.discriminator is not None:
                self._discriminator_trainable(False)
                logits = self.discriminator(self._noisy(_joined(condition, fake))).float()
                gan = adversarial_loss(recipe.gan_loss, logits, real=True)
                loss = loss + recipe.gan_weight * gan
                losses["g_gan"] = gan.item()
            loss.backward()
        self.opt_g.step()
        self.ema.update_parameters(_unwrap(self.generator))
        losses.update({f"g_{recipe.recon_loss}": recon.item(), "g_total": loss.item()})
        return losses

    def _ldm_lines(self, images: torch.Tensor) -> torch.Tensor:
        """The LDM's lines of [-1, 1] RGB images, at the LDM's own size."""
        size = self.ldm.config.size
        rgb = (images + 1) / 2
        if rgb.shape[-1] != size:
            rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False)
        return self.ldm(rgb)

    def _noisy(self, pairs: torch.Tensor) -> torch.Tensor:
        """D's input with the recipe's Gaussian noise (an instance-noise regularizer), if any."""
        noise = self.recipe.d_input_noise
        return pairs + noise * torch.randn_like(pairs) if noise else pairs

    def _discriminator_trainable(self, trainable: bool) -> None:
        # Under DDP every parameter must take part in each backward, so D stays trainable there and
        # the gradients the G step leaves on it are cleared by the next D step.
        if self.discriminator is not None and not self.distributed:
            _unwrap(self.discriminator).requires_grad_(trainable)

    def _discriminator_local(self):
        """During the G step, D's gradients are not all-reduced (they are thrown away)."""
        if isinstance(self.discriminator, DistributedDataParallel):
            return self.discriminator.no_sync()
        return nullcontext()

    def prepare_batch(self, batch: dict, step: int) -> dict:
        """A loader batch as step `step` trains on it: each sample cropped and flipped (one seeded draw
        per sample and step, applied to all its members), then at the training size (dense members
        area-resized, hints max-pooled), with hints and drafts drawn at that size on the device (--synth
        device) and the draft model's drafts when --drafts-from is given."""
        crop, flip = self.settings["crop"], self.settings["flip"]
        if crop or flip:
            height, width = batch["color"].shape[-2:]
            keys = batch.get("__key__") or [str(i) for i in range(batch["color"].shape[0])]
            batch = augment_batch(batch, draw_augment(list(keys), self.config.seed, step, height, width, crop, flip))
        batch = resize_batch(batch, self.size)
        if self.batch_synth is not None:
            batch = self.batch_synth(batch, step, hints=self.draws_hints(), drafts=self.draws_drafts())
        if self.draft_source is not None:
            batch = {**batch, "draft": self.drafts_for(batch)}
        return batch

    def train_step(self, batch: dict) -> tuple[dict[str, float], torch.Tensor]:
        step = self.step + 1
        batch = self.prepare_batch(batch, step)
        if self.schedule is not None:
            self.current_lr = self._apply_lr(step)
        condition = generator_input(batch, self.recipe.inputs).contiguous(memory_format=self.memory_format)
        real = target_image(batch, self.recipe.target).contiguous(memory_format=self.memory_format)
        d_inputs = self.settings["d_condition"]
        d_condition = generator_input(batch, tuple(d_inputs)).contiguous(memory_format=self.memory_format) if d_inputs else None
        train_generator = step % self.critic_steps == 0
        # Without a G step the forward pass needs no graph (and DDP must not wait for its gradients).
        with autocast(self.device, self.dtype), torch.set_grad_enabled(train_generator):
            output = self.generator(condition)
        fake, guides = (output.image, output.guides) if isinstance(output, GuidedOutput) else (output, [])
        losses = self.discriminator_step(d_condition, real, fake) if self.discriminator is not None else {}
        if train_generator:
            losses.update(self.generator_step(d_condition, real, fake, guides))
        return losses, fake.detach().float()

    # ------------------------------------------------------------------ loop
    def check_shards(self) -> None:
        """The shards must carry what the recipe's generator reads (palette, drafts): say which option makes them."""
        settings = DatasetLayout(self.config.root).shard_config
        if not settings.is_file():
            raise TrainingError(f"no shards in {self.config.root}: run `pipe shard {self.config.root}` first")
        made = json.loads(settings.read_text())
        inputs = self.recipe.inputs
        if "palette" in inputs and "palette" not in made.get("hints", []):
            raise TrainingError(f"recipe {self.config.recipe} reads palettes: make the shards with `pipe shard --hints palette,...` (then --redo)")
        if "draft" in inputs and self.draft_source is None and not made.get("artifacts"):
            raise TrainingError(f"recipe {self.config.recipe} {self.config.stage} reads drafts: make the shards with `pipe shard --artifacts paste,warp,spray`")
        if made.get("lean_train"):
            missing = [name for name, needed, drawn in (("hints", self.needs_hint(), self.draws_hints()),
                                                        ("drafts", "draft" in inputs and self.draft_source is None, self.draws_drafts())) if needed and not drawn]
            if missing:
                how = "train with --synth device" if self.config.synth != "device" else "shard without --lean-train"
                raise TrainingError(f"the train shards hold no {' or '.join(missing)} (pipe shard --lean-train) and this run does not draw them: {how}")

    def hint_mismatch(self) -> str | None:
        """How the shards' hint schemes differ from the ones the recipe's system trained with, or None."""
        settings = DatasetLayout(self.config.root).shard_config
        if not self.recipe.takes_hints or not self.recipe.hints or not settings.is_file():
            return None
        made = [scheme for scheme in json.loads(settings.read_text()).get("hints", []) if scheme != "palette"]
        if set(made) & set(self.recipe.hints):
            return None
        return (f"{self.config.recipe} {self.config.stage} was published with {','.join(self.recipe.hints)} hints, the shards carry "
                f"{','.join(made) or 'none'}: shard with `--hints {','.join(self.recipe.hints)}` (then --redo) to train as published")

    def loader_config(self, steps: int) -> LoaderConfig:
        """How this run streams its train shards: the members it reads, their decode scale, its position."""
        inputs = self.recipe.inputs + (self.draft_source.recipe.inputs if self.draft_source is not None else ())
        needs_draft_member = "draft" in self.recipe.inputs and self.draft_source is None and not self.draws_drafts()
        read = (("hint", self.needs_hint() and not self.draws_hints()), ("draft", needs_draft_member))
        images = ["color", "line"] + [name for name, needed in read if needed]
        # Without crops, dense members can be decoded at a reduced scale close to the training size.
        sizes = [self.size] + ([self.draft_source.size] if self.draft_source is not None else [])
        decode_size = None if self.settings["crop"] else max(sizes)
        return LoaderConfig(
            shards=(str(DatasetLayout(self.config.root).shard_split("train")),),
            batch_size=self.batch_size,
            workers=self.config.workers,
            shuffle_buffer=self.config.shuffle_buffer,
            repeat=True,
            epoch_samples=steps * self.batch_size,
            skip_batches=self.step,
            seed=self.config.seed,
            with_palette="palette" in inputs,
            images=tuple(images),
            decode_size=decode_size,
            jpeg_on_device=self.jpeg_on_device,
        )

    def loader(self, steps: int):
        try:
            return make_loader(self.loader_config(steps))
        except (FileNotFoundError, ValueError) as exc:
            raise TrainingError(str(exc)) from None

    def batches(self, steps: int) -> Iterator[dict]:
        """What `train` steps through for `steps` steps: the loader's batches on the device, floats in [0, 1]."""
        return device_batches(self.loader(steps), self.device)

    def train(self, on_step: Callable[[int], None] | None = None) -> RunSummary:
        """Train up to `target_steps()`; `on_step(step)` after each step (progress). On Ctrl-C (or
        SIGTERM) the state is saved and the KeyboardInterrupt goes on to the caller; an OSError (a full
        disk) goes on as it is, naming its file, and the last checkpoint written stays the one to resume."""
        config = self.config
        target = self.plan()
        first = self.step
        if target - self.step <= 0:
            return RunSummary(config.run_dir, first, self.step, 0.0, 0.0)
        self.check_shards()
        if self.rank == 0:
            if config.overwrite:
                self._clear_run_dir()
            config.run_dir.mkdir(parents=True, exist_ok=True)
            write_text(config.run_dir / "config.json", json.dumps(self.resolved_config(), indent=1, sort_keys=True) + "\n")
        self.generator.train()
        if self.discriminator is not None:
            self.discriminator.train()
        started = time.perf_counter()
        self.logs = RunLogs(config.run_dir, self.rank, self.step, config.record_keys)
        if self.rank == 0:
            self._draw_sample_rows()
        failing = True
        try:
            losses = self._steps(target, started, first, on_step)
            failing = False
        except KeyboardInterrupt:
            self._save()
            raise
        finally:
            self.logs.close(failing=failing)
        seconds = time.perf_counter() - started
        done = self.step - first
        return RunSummary(config.run_dir, first, self.step, seconds, done * self.batch_size / seconds if seconds else 0.0, losses)

    def _steps(self, target: int, started: float, first: int, on_step: Callable[[int], None] | None) -> dict[str, float]:
        """The loop: a step, its logs and samples (rank 0), its checkpoint; returns the last losses."""
        config = self.config
        losses: dict[str, float] = {}
        for batch in self.batches(target - self.step):
            losses, fake = self.train_step(batch)
            self.step += 1
            self.logs.record_keys(self.step, list(batch["__key__"]))
            if self.rank == 0:
                if on_step is not None:
                    on_step(self.step)
                if self.step % config.log_every == 0 or self.step == target:
                    self._log(losses, started, first)
                if self.step % config.sample_every == 0 or self.step == target:
                    self._write_samples()
            if self.step % config.checkpoint_every == 0 or self.step == target:
                self._save()
            if self.step >= target:
                break
        return losses

    def _draw_sample_rows(self, most_batches: int = 8) -> None:
        """Fill the grids' rows before the first step, so every grid shows the same distinct samples: the
        first distinct ones of the run's own stream (the same shards, seed and position, read again in this
        process), as the step that trains on each would see it. Random state is forked: training draws
        exactly what it would without grids."""
        config = replace(self.loader_config(most_batches), workers=0)
        try:
            batches = device_batches(make_loader(config), self.device)
        except (FileNotFoundError, ValueError) as exc:
            raise TrainingError(str(exc)) from None
        cuda = [self.device.index if self.device.index is not None else torch.cuda.current_device()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            for offset, batch in enumerate(batches):
                self.sample_rows.offer(self.prepare_batch(batch, self.step + offset + 1))
                if len(self.sample_rows.keys) >= self.sample_rows.count or offset + 1 >= most_batches:
                    break

    def _log(self, losses: dict[str, float], started: float, first: int) -> None:
        rate = (self.step - first) * self.batch_size / max(time.perf_counter() - started, 1e-9)
        self.logs.log(self.step, {**losses, **({"lr": self.current_lr} if self.current_lr is not None else {}), "images_per_second": rate})

    def _write_samples(self) -> None:
        """The grid of the run's sample rows (`SampleRows`: distinct samples, the same in every grid) and
        samples/keys.txt's line for it ("STEP key ..." from the top row down)."""
        rows = self.sample_rows
        fake = self.sample_output(rows.padded())[: len(rows.keys)]
        grid = sample_grid(rows.batch, fake, rows=len(rows.keys), title=f"step {self.step}, output: raw weights (training mode)")
        self.logs.sample(self.step, grid)
        keys = self.config.run_dir / "samples" / "keys.txt"
        with named_os_errors(keys), open(keys, "a") as handle:
            handle.write(f"{self.step} {' '.join(rows.keys)}\n")

    def sample_output(self, batch: dict) -> torch.Tensor:
        """The raw generator's output in training mode for `batch`, leaving the run as it was: no
        gradients, its BatchNorm statistics restored and the random stream forked (so a run that
        writes grids at other steps trains exactly as one that does not)."""
        generator = _unwrap(self.generator)
        condition = generator_input(batch, self.recipe.inputs).contiguous(memory_format=self.memory_format)
        buffers = [buffer.detach().clone() for buffer in generator.buffers()]
        cuda = [self.device.index if self.device.index is not None else torch.cuda.current_device()] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), torch.no_grad(), autocast(self.device, self.dtype):
            output = generator(condition)
        for buffer, saved in zip(generator.buffers(), buffers):
            buffer.copy_(saved)
        return (output.image if isinstance(output, GuidedOutput) else output).float()


def _joined(condition: torch.Tensor | None, image: torch.Tensor) -> torch.Tensor:
    """What D sees: the condition and the image along channels, or the image alone."""
    return image if condition is None else torch.cat([condition, image], dim=1)


def finish_distributed(trainer: Trainer) -> None:
    """Under torchrun: wait for every rank, then leave the process group."""
    if trainer.distributed:
        dist.barrier()
        dist.destroy_process_group()
