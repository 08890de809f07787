"""`pipe run`'s crawl stage: a board's new posts are known only once it is asked."""

from __future__ import annotations

from typing import Any

from pipeline.stage_jobs.common import counts_text, ids


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from manifests.schema import RAW

    return None, f"asks {spec.params['site']} for posts not among the {len(ids(job.dataset, RAW)):,} recorded"


def describe(spec: Any, summary: dict[str, Any] | None) -> tuple[str, str]:
    if summary is None:
        return "done", ""
    counts = summary.get("new_counts") or []
    new = sum(n for _, _, n in counts)
    if not any(status == "ok" for status, _, _ in counts):
        retried = f"; {new} post(s) that failed before were tried again and did not download" if new else ""
        return "nothing to do", f"no new downloads{retried}"
    return "done", f"{new} new: {counts_text(counts)}"


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs: the library parsers the command runs its values through (see pipeline/job/values.py)."""
    from crawlers.sites import resolve_site

    return [("site", lambda: resolve_site(params["site"], params.get("site_root")))]
