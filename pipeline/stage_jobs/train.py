"""`pipe run`'s train stages: `steps` more steps each time the train shards grow, resumed from the last checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.stage_jobs.common import without_option


def job_argument(job: Any, spec: Any, name: str) -> str | None:
    """The STAGE argument of `pipe train` is the table's name ([train.draft] trains `draft`)."""
    return spec.name.split(".", 1)[1] if name == "stage" else None


def check_params(spec: Any, params: dict[str, Any], label: str) -> None:
    if params.get("steps") is None:
        from pipeline.job.spec import JobFileError

        raise JobFileError(f"{label} steps: missing: a job trains this many steps each time the train shards grow (e.g. steps = 2000)")


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from pipeline.job.state import training_target

    target, why = training_target(job, spec)
    if target is None:
        return False, why
    return True, f"trains to step {target} ({why})"


def before_run(runner: Any, spec: Any) -> Any:
    from pipeline.job.run import StageOutcome
    from pipeline.job.spec import run_name
    from pipeline.job.state import read_job_state, train_shards_fingerprint, training_target, write_record

    target, why = training_target(runner.job, spec)
    path = runner.layout.job_state(spec.name)
    if target is None:
        state = read_job_state(path, "train")
        if state and not state["done"]:  # it got there in a run that failed or was killed after its checkpoint
            write_record(path, {**state, "done": True})
        runner.log.line(f"{spec.name}: nothing to do: {why}", "green")
        return StageOutcome(spec.name, "nothing to do", why, command=spec.command_line())
    name = run_name(spec)
    argv = _train_argv(list(spec.argv), target, runner.layout.run_checkpoint(name), runner.layout.run(name))
    write_record(path, {"target": target, "done": False, "shards": train_shards_fingerprint(runner.job.dataset)})
    return argv, f" (to step {target}: {why})", None


def after_run(runner: Any, spec: Any, report: str | None) -> None:
    from pipeline.job.state import read_job_state, write_record

    state = read_job_state(runner.layout.job_state(spec.name), "train")
    write_record(runner.layout.job_state(spec.name), {**state, "done": True})


def summary_path(layout: Any, spec: Any) -> Path | None:
    from pipeline.job.spec import run_name

    return layout.summary(f"train-{run_name(spec)}")


def describe(spec: Any, summary: dict[str, Any] | None) -> tuple[str, str]:
    if summary is None:
        return "done", ""
    first, last = summary.get("first_step", 0), summary.get("last_step")
    if first == last:  # the run was already at its target: nothing was trained
        return "nothing to do", f"{summary.get('run_dir') or 'the run'} is already at step {last}"
    return "done", f"steps {first + 1}-{last}"


def _train_argv(argv: list[str], target: int, checkpoint: Path, run_dir: Path) -> list[str]:
    from train.trainer import run_exists

    argv = without_option(argv, "--steps") + ["--steps", str(target)]
    if checkpoint.is_file():
        return argv + ["--resume"]
    if run_exists(run_dir):  # a run the job started and that was killed before its first checkpoint
        return argv + ["--overwrite"]
    return argv


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs: the library parsers the command runs its values through (see pipeline/job/values.py)."""
    from train.recipes import stage_recipe

    def schedule() -> object:
        from pipeline.training import show_training_config
        from train.schedule import parse_milestones

        milestones = params.get("lr_milestones")
        options = {key: params.get(key) for key in ("steps", "batch_size", "size", "preset", "epochs", "lr", "lr_schedule", "lr_gamma",
                                                     "warmup_steps", "crop", "flip", "label_flip", "critic_steps")}
        return show_training_config(params["recipe"], stage, None, lr_milestones=parse_milestones(milestones) if milestones is not None else None, **options)

    # The recipe first: the schedule's checks assume one that exists; their messages name their option.
    return [("recipe", lambda: stage_recipe(params["recipe"], stage)), ("options", schedule)]
