"""`pipe run`'s eval stage: a new report only when the checkpoints or shards it scores have changed."""

from __future__ import annotations

from typing import Any

from pipeline.stage_jobs.common import without_option


def complete_table(job: Any, spec: Any, table: dict[str, Any], label: str) -> None:
    """It scores the job's own checkpoints unless its table names others."""
    for key in ("draft", "refine"):
        if key not in table and job.stage(f"train.{key}") is not None:
            table[key] = f"train.{key}"
    if "draft" not in table:
        from pipeline.job.spec import JobFileError

        raise JobFileError(f"{label} draft: missing: the job trains no draft stage, so name a checkpoint (draft = \"runs/NAME/checkpoints/last.pt\")")


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from pipeline.job.state import eval_is_current

    current, state = eval_is_current(job, spec)
    if current:
        return False, f"report {state['report']} already scores these checkpoints"
    return True, "writes a new report (the checkpoints or shards changed since the last one)"


def gains_upstream_work() -> bool:
    return False  # its plan already compares the checkpoints and shards


def before_run(runner: Any, spec: Any) -> Any:
    from pipeline.job.run import StageOutcome
    from pipeline.job.state import eval_is_current

    current, state = eval_is_current(runner.job, spec)
    if current:
        why = f"report {state['report']} already scores these checkpoints on these shards"
        runner.log.line(f"{spec.name}: nothing to do: {why}", "green")
        return StageOutcome(spec.name, "nothing to do", why, command=spec.command_line())
    report = f"{spec.params.get('name') or 'job'}-{runner.stamp}"
    return without_option(list(spec.argv), "--name") + ["--name", report], f" (report {report})", report


def after_run(runner: Any, spec: Any, report: str | None) -> None:
    from pipeline.job.state import eval_inputs, write_record

    write_record(runner.layout.job_state(spec.name), {"inputs": eval_inputs(runner.job, spec), "report": report})


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs: the library parsers the command runs its values through (see pipeline/job/values.py)."""
    from pipeline.eval.hints import parse_settings
    from pipeline.eval.lines import parse_line_sources

    return [("hints", lambda: parse_settings(params["hints"])), ("lines", lambda: parse_line_sources(params["lines"]))]
