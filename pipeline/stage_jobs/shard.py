"""`pipe run`'s shard stage: every prepared image goes into a shard once."""

from __future__ import annotations

from typing import Any

from pipeline.stage_jobs.common import ids, ok_keys


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from manifests.schema import PREPARED, SHARDS

    keys = ok_keys(job.dataset, PREPARED)
    pending = len(keys - ids(job.dataset, SHARDS))
    return pending > 0, f"{pending:,} of {len(keys):,} prepared images not in shards yet"


def value_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Any]]:
    """(key, check) pairs: the library parsers the command runs its values through (see pipeline/job/values.py)."""
    from pipeline.shard.cli_support import parse_jpeg_members
    from synth.artifacts import parse_artifact_names
    from synth.hints import parse_hint_names
    from synth.lines import parse_line_weights

    return [
        ("hints", lambda: parse_hint_names(params["hints"])),
        ("artifacts", lambda: parse_artifact_names(params["artifacts"])),
        ("lines", lambda: params.get("lines") is None or parse_line_weights(params["lines"])),
        ("jpeg", lambda: parse_jpeg_members(params["jpeg"])),
    ]
