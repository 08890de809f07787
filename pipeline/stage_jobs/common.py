"""The job hooks a stage has unless its own module says otherwise: a ledger stage run as its command is.

Hooks take the job (`pipeline.job.spec.JobSpec`) and the stage's spec (`StageSpec`); the runner's hooks
also take the `JobRunner`, for its layout, log and stamp.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def complete_table(job: Any, spec: Any, table: dict[str, Any], label: str) -> None:
    """Add to the stage's table what the chain decides for it (nothing by default)."""


def job_argument(job: Any, spec: Any, name: str) -> str | None:
    """A positional argument the job itself supplies (None: the table's value, if any)."""
    return None


def default_argument(job: Any, spec: Any, name: str, table: dict[str, Any], label: str) -> str | None:
    """A positional argument the table leaves out but the chain can supply (None: none)."""
    return None


def check_params(spec: Any, params: dict[str, Any], label: str) -> None:
    """Refuse (JobFileError) parsed values a scheduled run cannot take."""


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs run before the job starts: each check raises ValueError or PipeError (none by default)."""
    return []


def dependencies(job: Any, spec: Any) -> list[str]:
    """The job's stages whose failure leaves nothing for this one to do."""
    present = {s.name for s in job.stages}
    return [name for name in spec.entry.upstream if name in present]


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    """(has work: True, False, or None when only running it can tell; what)."""
    return None, ""


def gains_upstream_work() -> bool:
    """Whether work in an earlier stage gives this one work too (the dry run says so)."""
    return True


def before_run(runner: Any, spec: Any) -> Any:
    """(argv, a note, a report name) for this run, or the stage's outcome when it has nothing to do."""
    return list(spec.argv), "", None


def after_run(runner: Any, spec: Any, report: str | None) -> None:
    """Record what the finished run means for the next job run (nothing by default)."""


def summary_path(layout: Any, spec: Any) -> Path | None:
    """The summary the stage's session writes (ROOT/.pipe/summaries/<name>.json), or None."""
    return layout.summary(spec.entry.ledger) if spec.entry.ledger else None


def describe(spec: Any, summary: dict[str, Any] | None) -> tuple[str, str]:
    """(done or nothing to do, what) from the stage's session summary."""
    if summary is None:
        return "done", ""
    counts = summary.get("new_counts") or []
    new = sum(n for _, _, n in counts)
    if not summary.get("processed") and not new:
        return "nothing to do", "every input is already in the ledger"
    return "done", f"{new} new: {counts_text(counts)}"


def counts_text(counts: list[Any]) -> str:
    return ", ".join(f"{status}{'/' + reason if reason else ''} {n}" for status, reason, n in counts)


def ok_keys(root: Path, schema: Any) -> set[str]:
    """The keys of a ledger's ok rows (none when it does not exist yet)."""
    from manifests.ledger import Ledger

    ledger = Ledger(root, schema)
    if not ledger.exists():
        return set()
    table = ledger.read(columns=["status"])
    return {key for key, status in zip(table.column("key").to_pylist(), table.column("status").to_pylist()) if status == "ok"}


def ids(root: Path, schema: Any) -> set[str]:
    """The input ids a ledger holds (none when it does not exist yet)."""
    return set(id_array(root, schema).to_pylist())


def id_array(root: Path, schema: Any) -> Any:
    """The input ids a ledger holds as an Arrow array (empty when it does not exist yet)."""
    from manifests.ledger import Ledger

    return Ledger(root, schema).id_array()


def without_option(argv: list[str], option: str) -> list[str]:
    """`argv` less `option` and its value."""
    out, skip = [], False
    for part in argv:
        if skip:
            skip = False
            continue
        if part == option:
            skip = True
            continue
        out.append(part)
    return out
