"""`pipe train`'s stage shell: the training loop of `train.trainer` inside a stage session.

The session holds a lock per run (two trainings of one run name would overwrite each other's
checkpoints), shows the progress bar, and turns Ctrl-C (after the trainer has saved its state) into
one line; the run's summary goes to ROOT/.pipe/summaries/train-<run>.json.
"""

from __future__ import annotations

from dataclasses import asdict

from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.session import StageSession
from train.errors import TrainingError
from train.trainer import RunSummary, TrainConfig, Trainer, finish_distributed


def run_training(config: TrainConfig) -> RunSummary:
    try:
        trainer = Trainer(config)
    except TrainingError as exc:
        raise PipeError(str(exc)) from None
    # Under torchrun every rank trains; each holds its own lock, rank 0 alone reports.
    name = f"train-{config.run_name}" + (f"-rank{trainer.rank}" if trainer.distributed else "")
    mismatch = trainer.hint_mismatch()
    if mismatch and trainer.rank == 0:
        console.print(f"[yellow]warning:[/] {mismatch}", soft_wrap=True)
    with StageSession(config.root, name, resume_hint="continue with --resume") as session:
        description = f"train {config.recipe} {config.stage}"
        with session.progress(description, total=config.steps, completed=trainer.step, enabled=trainer.rank == 0) as bar:
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
