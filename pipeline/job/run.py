"""`pipe run JOB.toml`: the stages of a job in chain order, each resumed from its ledger, under one lock.

Every stage is the very command a user would type (the job file's table, parsed by that command's own
parser) run in this process. What the chain adds:

- one job lock per dataset (ROOT/.pipe/locks/job.lock): a second `pipe run` exits 3 at once, so a cron
  overlap is not an error that needs a person;
- training continues from the last checkpoint for the table's `steps` each time the train shards have
  grown (a re-run of a finished job does not train again), and eval writes a new report only when the
  checkpoints it scores have changed, keeping the old ones;
- a failed stage does not stop the stages that do not depend on it; the exit code is 0 when every stage
  finished, 1 when one failed;
- a record of each run in ROOT/jobs/<time>/: job.toml (as it ran, after --set), job.log (plain lines),
  summary.json (what each stage did, updated as the job goes, so a killed job still says where it died).
"""

from __future__ import annotations

import fcntl
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from manifests.layout import DatasetLayout
from rich.text import Text

from pipeline.console import console
from pipeline.errors import USER_ERRORS, Interrupted, PipeError
from pipeline.job.spec import JobSpec, StageSpec, chain
from pipeline.job.state import write_record
from pipeline.stage_options import StageAborted, invoke
from pipeline.stages import Stage
from pipeline.recorded_options import DamagedRecord, read_digested_json

EXIT_OK, EXIT_FAILED, EXIT_LOCKED = 0, 1, 3


# --------------------------------------------------------------------------------------------- selection
def select_stages(job: JobSpec, start: str | None, until: str | None, only: str | None) -> list[StageSpec]:
    """--from/--until/--only: a stage name, or `train` for every train stage."""
    names = [stage.name for stage in job.stages]

    def matching(option: str, value: str) -> list[int]:
        hits = [i for i, name in enumerate(names) if name == value or name.split(".")[0] == value]
        if not hits:
            known = ", ".join(dict.fromkeys(names + [n.split(".")[0] for n in names]))
            raise PipeError(f"{option} {value}: the job has no such stage; it has: {known}")
        return hits

    if only is not None:
        if start is not None or until is not None:
            raise PipeError("--only goes alone: use --from and --until together for a range")
        return [job.stages[i] for i in matching("--only", only)]
    first = matching("--from", start)[0] if start is not None else 0
    last = matching("--until", until)[-1] if until is not None else len(names) - 1
    if first > last:
        raise PipeError(f"--from {start} comes after --until {until} in the chain ({' -> '.join(names)})")
    return job.stages[first : last + 1]


def dependencies(job: JobSpec, stage: StageSpec) -> list[str]:
    """The job's stages whose failure leaves nothing for `stage` to do."""
    return stage.entry.hook("dependencies")(job, stage)


# --------------------------------------------------------------------------------------------- outcomes
@dataclass
class StageOutcome:
    name: str
    status: str  # done, nothing to do, failed, skipped, interrupted
    detail: str = ""
    seconds: float = 0.0
    command: str = ""
    summary: dict[str, Any] | None = None


@dataclass
class JobRecord:
    """ROOT/jobs/<time>/summary.json."""

    job: str
    dataset: str
    started: str
    stages: list[StageOutcome] = field(default_factory=list)
    running: str | None = None
    finished: str | None = None
    exit_code: int | None = None


class JobLog:
    """Plain, timestamped lines to ROOT/jobs/<time>/job.log, and to the console."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def line(self, text: str, style: str = "") -> None:
        stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")
        with self.path.open("a") as handle:
            handle.write(f"{stamp} {text}\n")
        console.print(Text(text, style=style), soft_wrap=True)


# --------------------------------------------------------------------------------------------- the lock
class JobLocked(Exception):
    """Another `pipe run` holds the dataset's job lock."""


class JobLock:
    def __init__(self, dataset: Path) -> None:
        self.path = dataset / ".pipe" / "locks" / "job.lock"
        self.handle = None

    def __enter__(self) -> JobLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held for the job
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise JobLocked(f"another `pipe run` ({holder or 'unknown pid'}) holds {self.path}; this run does nothing") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, since {datetime.now().astimezone().isoformat(timespec='seconds')}")
        handle.flush()
        self.handle = handle
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


# --------------------------------------------------------------------------------------------- running
class JobRunner:
    def __init__(self, job: JobSpec, selected: list[StageSpec]) -> None:
        self.job = job
        self.selected = selected
        self.layout = DatasetLayout(job.dataset)
        self.stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.folder = self._new_folder()
        self.log = JobLog(self.folder / "job.log")
        self.record = JobRecord(
            job=str(job.path), dataset=str(job.dataset), started=datetime.now(timezone.utc).isoformat(timespec="seconds")
        )

    def _new_folder(self) -> Path:
        # What a killed job's atomic writes left (a record or state file's temporary): this run holds the lock.
        for stale in [*self.layout.jobs.glob("*/*.tmp"), *self.layout.job_state("-").parent.glob("*.tmp")]:
            stale.unlink(missing_ok=True)
        base = self.layout.jobs / self.stamp
        folder, n = base, 1
        while folder.exists():  # two runs within a second
            n += 1
            folder = base.with_name(f"{self.stamp}-{n}")
        folder.mkdir(parents=True)
        (folder / "job.toml").write_text(self.job.text)
        return folder

    def save(self) -> None:
        write_record(self.folder / "summary.json", asdict(self.record))

    def run(self) -> int:
        names = " -> ".join(s.name for s in self.selected)
        self.log.line(f"job {self.job.path}: dataset {self.job.dataset}; stages {names}; record in {self.folder}", "bold")
        failed: set[str] = set()
        try:
            for stage in self.selected:
                blocked = [d for d in dependencies(self.job, stage) if d in failed]
                if blocked:
                    outcome = StageOutcome(stage.name, "skipped", f"{', '.join(blocked)} failed")
                    failed.add(stage.name)
                    self.log.line(f"{stage.name}: skipped: {outcome.detail}", "yellow")
                else:
                    outcome = self.run_stage(stage)
                    if outcome.status == "failed":
                        failed.add(stage.name)
                self.record.stages.append(outcome)
                self.record.running = None
                self.save()
        except Interrupted as exc:
            self.record.stages.append(StageOutcome(self.record.running or "?", "interrupted", str(exc)))
            self.finish(2)
            raise
        code = EXIT_FAILED if failed else EXIT_OK
        self.finish(code)
        worked = [o for o in self.record.stages if o.status == "done"]
        if code == EXIT_OK and not worked:
            self.log.line("job: nothing to do: every stage is up to date", "green")
        elif code == EXIT_OK:
            self.log.line(f"job: finished ({', '.join(o.name for o in worked)} did work)", "green")
        else:
            self.log.line(f"job: {len(failed)} stage(s) failed or skipped: {', '.join(sorted(failed, key=chain().index))}; see {self.folder / 'job.log'}", "red")
        return code

    def finish(self, code: int) -> None:
        self.record.exit_code = code
        self.record.finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.save()

    def run_stage(self, stage: StageSpec) -> StageOutcome:
        self.record.running = stage.name
        self.save()
        try:
            prepared = self._prepare(stage)
        except USER_ERRORS as exc:  # damaged job state: this stage cannot know where it stands
            self.log.line(f"{stage.name}: failed: {exc}", "red")
            return StageOutcome(stage.name, "failed", str(exc), command=stage.command_line())
        if isinstance(prepared, StageOutcome):
            return prepared
        argv, note, report = prepared
        command_line = "pipe " + " ".join([stage.command, *argv])
        self.log.line(f"{stage.name}: start{note}: {command_line}", "bold cyan")
        started = time.monotonic()
        summary_path = stage.entry.hook("summary_path")(self.layout, stage)
        before = summary_path.stat().st_mtime_ns if summary_path and summary_path.is_file() else None
        status = self._invoke_stage(stage, argv)
        seconds = time.monotonic() - started
        summary = None
        if summary_path is not None and summary_path.is_file() and summary_path.stat().st_mtime_ns != before:
            summary = self._read_summary(summary_path)
        if status != "ok":
            self.log.line(f"{stage.name}: {status} after {seconds:.1f} s", "red")
            return StageOutcome(stage.name, "failed", status.removeprefix("failed: "), seconds, command_line, summary)
        stage.entry.hook("after_run")(self, stage, report)
        outcome_status, what = _what_it_did(stage, summary)
        self.log.line(f"{stage.name}: {outcome_status} in {seconds:.1f} s{': ' + what if what else ''}", "green")
        return StageOutcome(stage.name, outcome_status, what, seconds, command_line, summary)

    def _prepare(self, stage: StageSpec) -> StageOutcome | tuple[list[str], str, str | None]:
        """The stage's arguments for this run (argv, a note, the report name), or its outcome when it has nothing to do."""
        return stage.entry.hook("before_run")(self, stage)

    def _invoke_stage(self, stage: StageSpec, argv: list[str]) -> str:
        """Run the stage's command: "ok" or "failed: <why>"; an interruption says how to resume the job."""
        resume = f"run `pipe run {self.job.path}` again to resume"
        try:
            return _invoke(stage.entry, argv)
        except Interrupted as exc:  # the stage saved its work; its own hint (`--resume`) is not how a job goes on
            self.log.line(f"{stage.name}: interrupted", "red")
            saved = str(exc).rsplit("; ", 1)[0] if "; " in str(exc) else str(exc)
            raise Interrupted(f"{saved} (in {stage.name}); {resume}") from None
        except (KeyboardInterrupt, StageAborted):  # Ctrl-C outside a stage session
            self.log.line(f"{stage.name}: interrupted", "red")
            raise Interrupted(f"interrupted during {stage.name}; {resume}") from None
        except USER_ERRORS as exc:
            return f"failed: {exc}"
        except Exception as exc:  # noqa: BLE001 - one stage's bug must not stop the stages that do not need it
            (self.folder / f"{stage.name}.traceback.txt").write_text(traceback.format_exc())
            return f"failed: {type(exc).__name__}: {exc} (traceback in {self.folder / (stage.name + '.traceback.txt')})"

    def _read_summary(self, path: Path) -> dict[str, Any] | None:
        """A stage's session summary; a damaged one is named, and the outcome comes from the exit code alone."""
        try:
            return read_digested_json(path)
        except (DamagedRecord, OSError) as exc:
            self.log.line(f"warning: the stage's summary {path} is damaged ({exc}); its outcome is its exit code alone", "yellow")
            return None


def _what_it_did(stage: StageSpec, summary: dict[str, Any] | None) -> tuple[str, str]:
    return stage.entry.hook("describe")(stage, summary)


def _invoke(stage: Stage, argv: list[str]) -> str:
    """Run one stage's command in this process: "ok" or "failed: <why>" (a seam tests replace)."""
    return invoke(stage, argv)


def run_job(job: JobSpec, selected: list[StageSpec], on_runner: Callable[[JobRunner], None] | None = None) -> int:
    try:
        with JobLock(job.dataset):
            runner = JobRunner(job, selected)
            if on_runner is not None:
                on_runner(runner)
            return runner.run()
    except JobLocked as exc:
        console.print(f"[yellow]{exc}[/]", soft_wrap=True)
        return EXIT_LOCKED
