"""`pipe run`'s import stage: a board dump into the crawl's ledger, before the crawl (which then
downloads only the posts the dump lacks). Its summary is the crawl's, so it is described like one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.stage_jobs.common import ids


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from manifests.schema import RAW

    return None, f"imports the posts of {spec.params['metadata']} not among the {len(ids(job.dataset, RAW)):,} recorded"


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs: the checks `pipe import booru` makes before it reads a post."""
    from pipeline.importing.booru_options import check_source, import_crawl_config

    fields = ("source", "root", "metadata", "layout", "link", "site", "tags", "rating", "min_side", "exts", "max_file_mb")
    values = {name: params.get(name) for name in fields}
    for name in ("source", "root", "metadata"):
        if values[name] is not None:
            values[name] = Path(values[name])
    return [("source", lambda: check_source(values["source"])), ("metadata", lambda: import_crawl_config(**values))]
