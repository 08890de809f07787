"""`pipe run`'s extract stage: one line drawing per prepared image and method."""

from __future__ import annotations

from typing import Any

from pipeline.stage_jobs.common import id_array


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from manifests.ledger import Ledger
    from manifests.schema import LINES, PREPARED
    from pipeline.extract.plan import plan_extract, prepared_table

    methods = tuple(m.strip() for m in str(spec.params["method"]).split(",") if m.strip())
    if not Ledger(job.dataset, PREPARED).exists():
        return False, "0 of 0 image x method pairs not in the ledger"
    planned, items = plan_extract(prepared_table(job.dataset), methods, id_array(job.dataset, LINES))
    pending = sum(len(item.methods) for item in items)
    return pending > 0, f"{pending:,} of {planned:,} image x method pairs not in the ledger"


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs: the library parsers the command runs its values through (see pipeline/job/values.py)."""
    from extractors.methods import parse_method_names, parse_overrides

    return [("method", lambda: parse_method_names(params["method"])), ("set", lambda: parse_overrides(params.get("set_") or []))]
