"""`pipe run`'s extract stage: one line drawing per prepared image and method."""

from __future__ import annotations

from typing import Any

from pipeline.stage_jobs.common import ids, ok_keys


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from manifests.schema import LINES, PREPARED
    from pipeline.extract.plan import line_id

    methods = [m.strip() for m in str(spec.params["method"]).split(",") if m.strip()]
    keys = ok_keys(job.dataset, PREPARED)
    done = ids(job.dataset, LINES)
    pending = sum(1 for key in keys for method in methods if line_id(method, key) not in done)
    return pending > 0, f"{pending:,} of {len(keys) * len(methods):,} image x method pairs not in the ledger"


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs: the library parsers the command runs its values through (see pipeline/job/values.py)."""
    from extractors.methods import parse_method_names, parse_overrides

    return [("method", lambda: parse_method_names(params["method"])), ("set", lambda: parse_overrides(params.get("set_") or []))]
