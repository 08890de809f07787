"""`pipe run`'s shard stage: every prepared image goes into a shard once."""

from __future__ import annotations

from typing import Any

from pipeline.stage_jobs.common import ids, ok_keys


def plan(job: Any, spec: Any) -> tuple[bool | None, str]:
    from manifests.schema import PREPARED, SHARDS

    keys = ok_keys(job.dataset, PREPARED)
    pending = len(keys - ids(job.dataset, SHARDS))
    return pending > 0, f"{pending:,} of {len(keys):,} prepared images not in shards yet"
