"""`pipe run`'s prepare stage: it prepares the crawl's downloads unless its table names a source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.stage_jobs.common import id_array


def default_argument(job: Any, spec: Any, name: str, table: dict[str, Any], label: str) -> str | None:
    if name != "source":
        return None
    from pipeline.job.spec import JobFileError

    if job.stage("crawl") is None and job.stage("import") is None and not (job.dataset / "raw.parquet").is_file():
        raise JobFileError(f"{label} source: missing: the job has no [crawl] or [import] table, so give a folder of images or a crawl ledger")
    table["source"] = str(job.dataset / "raw.parquet")
    return table["source"]


def dependencies(job: Any, spec: Any) -> list[str]:
    """The import and the crawl (those the job has), when this stage prepares their ledger."""
    from manifests.layout import DatasetLayout

    crawls = Path(spec.params.get("source") or "") == DatasetLayout(job.dataset).ledger("raw")
    return [name for name in spec.entry.upstream if crawls and job.stage(name) is not None]


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from manifests.schema import PREPARED
    from pipeline.prepare.stage import PrepareConfig, PrepareStage
    from pipeline.runner import pending_work

    source = Path(spec.params["source"])
    if not source.exists():
        return None, f"prepares what the crawl downloads ({source} does not exist yet)"
    planned, pending = pending_work(PrepareStage(source=source, root=job.dataset, config=PrepareConfig()).plan(), id_array(job.dataset, PREPARED))
    return bool(pending), f"{len(pending):,} of {planned:,} inputs not in the ledger"
