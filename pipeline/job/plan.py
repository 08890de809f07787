"""`pipe run --dry-run`: which stages of a job have work, and how much, read from the ledgers; nothing is written.

Counts are of what is on disk now: a stage after one that still has work will also get that stage's
output (the plan says so), and a crawl's new posts are known only once the board is asked.
"""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from manifests.ledger import Ledger
from manifests.schema import LINES, PREPARED, RAW, SHARDS
from pipeline.job.state import eval_is_current, training_target
from pipeline.job.spec import JobSpec, StageSpec


def _ok_keys(root: Path, schema) -> set[str]:  # noqa: ANN001
    ledger = Ledger(root, schema)
    if not ledger.exists():
        return set()
    table = ledger.read()
    return {key for key, status in zip(table.column("key").to_pylist(), table.column("status").to_pylist()) if status == "ok"}


def _ids(root: Path, schema) -> set[str]:  # noqa: ANN001
    ledger = Ledger(root, schema)
    return ledger.ids() if ledger.exists() else set()


def stage_work(job: JobSpec, stage: StageSpec) -> tuple[bool | None, str]:
    """(has work: True, False, or None when only running it can tell; what)."""
    root = job.dataset
    if stage.command == "crawl":
        recorded = len(_ids(root, RAW))
        return None, f"asks {stage.params['site']} for posts not among the {recorded:,} recorded"
    if stage.command == "prepare":
        from pipeline.prepare.stage import PrepareConfig, PrepareStage

        source = Path(stage.params["source"])
        if not source.exists():
            return None, f"prepares what the crawl downloads ({source} does not exist yet)"
        planned = PrepareStage(source=source, root=root, config=PrepareConfig()).plan()
        done = _ids(root, PREPARED)
        pending = sum(1 for item in planned if item.id not in done)
        return pending > 0, f"{pending:,} of {len(planned):,} inputs not in the ledger"
    if stage.command == "extract":
        from pipeline.extract.plan import line_id

        methods = [m.strip() for m in str(stage.params["method"]).split(",") if m.strip()]
        keys = _ok_keys(root, PREPARED)
        done = _ids(root, LINES)
        pending = sum(1 for key in keys for method in methods if line_id(method, key) not in done)
        return pending > 0, f"{pending:,} of {len(keys) * len(methods):,} image x method pairs not in the ledger"
    if stage.command == "shard":
        keys = _ok_keys(root, PREPARED)
        pending = len(keys - _ids(root, SHARDS))
        return pending > 0, f"{pending:,} of {len(keys):,} prepared images not in shards yet"
    if stage.command == "train":
        target, why = training_target(job, stage)
        if target is None:
            return False, why
        return True, f"trains to step {target} ({why})"
    if stage.command == "eval":
        current, state = eval_is_current(job, stage)
        if current:
            return False, f"report {state['report']} already scores these checkpoints"
        return True, "writes a new report (the checkpoints or shards changed since the last one)"
    return None, ""


def plan_table(job: JobSpec, stages: list[StageSpec]) -> Table:
    table = Table(title=f"plan of {job.path} (dataset {job.dataset}); nothing was run", title_justify="left")
    table.add_column("stage")
    table.add_column("work")
    table.add_column("what")
    table.add_column("command")
    upstream_busy = False
    for stage in stages:
        has_work, what = stage_work(job, stage)
        if has_work is False and upstream_busy and stage.command != "eval":
            what += "; plus what the stages before it add"
        label = {True: "[yellow]yes[/]", False: "[green]none[/]", None: "[cyan]?[/]"}[has_work]
        table.add_row(stage.name, label, what, stage.command_line())
        upstream_busy = upstream_busy or has_work is not False
    return table
