"""`pipe train`'s stage shell: the training loop of `train.trainer` inside a stage session.

The session holds a lock per run (two trainings of one run name would overwrite each other's
checkpoints), shows the progress bar, and turns Ctrl-C (after the trainer has saved its state) into
one line; the run's summary goes to ROOT/.pipe/summaries/train-<run>.json.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from manifests.layout import DatasetLayout
from manifests.schema import LEDGERS, SHARDS
from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.session import STAGE_COMMANDS, StageSession
from train.errors import TrainingError
from train.trainer import RunSummary, TrainConfig, Trainer, finish_distributed


def show_training_config(recipe: str, stage: str, root: Path | None, **options: Any) -> dict:
    """`pipe train --show-config`: the resolved settings (train.settings) as JSON-ready data, without
    training and without needing a dataset; with a ROOT holding train shards, --epochs is also
    resolved to steps (ceil(samples / batch) per epoch, one process)."""
    from manifests.shards import split_keys
    from train.schedule import steps_per_epoch
    from train.settings import SettingOptions, resolve_settings

    preset = options.pop("preset") or "paper"
    try:
        settings = resolve_settings(recipe, stage, preset, SettingOptions(**options))
    except ValueError as exc:
        raise PipeError(str(exc)) from None
    if settings["epochs"] is not None and root is not None:
        samples = len(split_keys(DatasetLayout(root).shard_split("train")))
        if samples:
            per_epoch = steps_per_epoch(samples, settings["batch_size"])
            settings["steps"] = settings["epochs"] * per_epoch
            settings["sources"]["steps"] = (f"{settings['epochs']} epochs x {per_epoch} steps (ceil({samples} train samples / batch "
                                            f"{settings['batch_size']}), one process; under torchrun divide by the processes)")
    return settings


def refuse_stale_shards(root: Path) -> None:
    """Refuse shards made from outputs that a later `pipe prepare|extract --redo` replaced: the check
    `pipe shard` itself makes (`StageSession.stale_upstream`), read-only."""
    earlier = tuple(schema.stage for schema in LEDGERS[: LEDGERS.index(SHARDS)])
    stale = StageSession(root, SHARDS.stage, upstream=earlier).stale_upstream()
    if stale:
        redone = " and ".join(f"`pipe {STAGE_COMMANDS.get(stage, stage)} --redo`" for stage in stale)
        raise PipeError(f"the shards in {DatasetLayout(root).shards} are stale: {redone} replaced the outputs they were made from; "
                        f"run `pipe shard {root} --redo` first, then train")


def run_training(config: TrainConfig) -> RunSummary:
    refuse_stale_shards(config.root)
    try:
        trainer = Trainer(config)
    except TrainingError as exc:
        raise PipeError(str(exc)) from None
    # Under torchrun every rank trains; each holds its own lock, rank 0 alone reports.
    name = f"train-{config.run_name}" + (f"-rank{trainer.rank}" if trainer.distributed else "")
    mismatch = trainer.hint_mismatch()
    if mismatch and trainer.rank == 0:
        console.print(f"[yellow]warning:[/] {mismatch}", soft_wrap=True)
    try:
        target = trainer.plan()
        if target > trainer.step:  # before the progress bar: a run that cannot start draws none
            trainer.check_shards()
    except TrainingError as exc:
        raise PipeError(str(exc)) from None
    if trainer.settings["preset"] != "paper" and trainer.rank == 0:
        console.print(f"[yellow]note:[/] {trainer.settings['preset_note']}", soft_wrap=True)
    with StageSession(config.root, name, resume_hint="continue with --resume") as session:
        description = f"train {config.recipe} {config.stage}"
        with session.progress(description, total=target, completed=trainer.step, enabled=trainer.rank == 0 and target > trainer.step) as bar:
            try:
                summary = trainer.train(on_step=lambda step: bar.advance())
            except KeyboardInterrupt:
                session.saved_note = f"checkpoint saved at step {trainer.step}"
                raise
            except TrainingError as exc:
                raise PipeError(str(exc)) from None
        if trainer.rank == 0:
            session.write_summary(asdict(summary))
    finish_distributed(trainer)
    return summary
