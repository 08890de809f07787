"""What `pipe run` remembers between runs (ROOT/.pipe/jobs/<stage>.json), and the records it writes.

A train stage's state says the step it trains toward, whether it got there and which train shards it
was set for; an eval stage's, the inputs its last report scored. Both carry a digest (as options
records do), so a damaged file is a one-line error naming it — never taken as "no state yet", which
would start the bookkeeping over ("first run") on top of a run that has trained for days.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from manifests.layout import DatasetLayout
from manifests.shards import finished_tars

from pipeline.errors import PipeError
from pipeline.job.spec import JobSpec, StageSpec, run_name
from pipeline.recorded_options import DamagedRecord, options_json, read_digested_json

# The keys each kind of state must have, with their types (bool is not an int here).
_STATE_FIELDS: dict[str, dict[str, type]] = {
    "train": {"target": int, "done": bool, "shards": list},
    "eval": {"inputs": dict, "report": str},
}


class DamagedState(PipeError):
    """A job state file or job record that no longer reads as pipe wrote it."""


def state_problem(values: dict[str, Any], kind: str) -> str | None:
    """Why `values` is not a state of this kind (a stage command: train, eval), or None."""
    for key, wanted in _STATE_FIELDS.get(kind, {}).items():
        value = values.get(key)
        if key not in values:
            return f"it lacks {key!r}"
        if not isinstance(value, wanted) or (wanted is int and (isinstance(value, bool) or value < 1)):
            return f"{key!r} is {value!r}, not a {'positive integer' if wanted is int else wanted.__name__}"
    return None


def read_job_state(path: Path, kind: str) -> dict[str, Any]:
    """The state a stage's last job run left ({} when it has none yet); DamagedState when it is damaged."""
    if not path.is_file():
        return {}
    try:
        values = read_digested_json(path)
    except (DamagedRecord, OSError) as exc:
        problem = str(exc)
    else:
        problem = state_problem(values, kind)
        if problem is None:
            return values
    raise DamagedState(
        f"job state {path} is damaged ({problem}): restore it from a backup, or delete it to start this stage's "
        "job bookkeeping over (the run folder and its checkpoints are kept)"
    )


def write_record(path: Path, value: dict[str, Any]) -> None:
    """Write a state file or job record atomically, with its digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(options_json(value))
    os.replace(temporary, path)


def _files_fingerprint(paths: list[Path]) -> list[list[Any]]:
    out = []
    for path in paths:
        try:
            info = path.stat()
            out.append([str(path), info.st_size, info.st_mtime_ns])
        except FileNotFoundError:
            out.append([str(path), None, None])
    return out


def train_shards_fingerprint(dataset: Path) -> list[list[Any]]:
    return _files_fingerprint(finished_tars(DatasetLayout(dataset).shard_split("train")))


def checkpoint_at(path: Path) -> int | None:
    """The step a checkpoint was saved at (None: none, or unreadable), read without torch."""
    from pipeline.status import checkpoint_step

    return checkpoint_step(path) if path.is_file() else None


def training_target(job: JobSpec, stage: StageSpec) -> tuple[int | None, str]:
    """The step a train stage should reach in this run, or None with why there is nothing to train.

    A run trains `steps` steps the first time, then `steps` more each time the train shards have changed
    since it last finished; a run killed or failed before it reached its target resumes toward the same
    target, and one that reached it (its job run failed after the last checkpoint) has nothing to do."""
    layout = DatasetLayout(job.dataset)
    steps = int(stage.params["steps"])
    state = read_job_state(layout.job_state(stage.name), "train")
    checkpoint = layout.run_checkpoint(run_name(stage))
    if not state or not checkpoint.is_file():
        return (state["target"] if state and not state["done"] else steps), "first run"
    if not state["done"]:
        reached = checkpoint_at(checkpoint)
        if reached is not None and reached >= state["target"]:
            return None, f"{run_name(stage)} already reached step {reached} (the job run that trained it ended before it was recorded)"
        return state["target"], "resuming an unfinished run"
    if state["shards"] != train_shards_fingerprint(job.dataset):
        return state["target"] + steps, "the train shards changed"
    return None, f"{run_name(stage)} is at step {state['target']} and the train shards have not changed"


def eval_inputs(job: JobSpec, stage: StageSpec) -> dict[str, Any]:
    """What a report depends on: the checkpoints, the split's shards, the command line."""
    layout = DatasetLayout(job.dataset)
    checkpoints = [Path(stage.params[k]) for k in ("draft", "refine") if stage.params.get(k)]
    split = str(stage.params.get("split") or "val")
    shards = [tar for name in split.split(",") for tar in finished_tars(layout.shard_split(name.strip()))]
    # Lines read from ROOT (--lines real,xdog) and the histogram guessed hints come from change on their own.
    others = [layout.ledger("lines"), layout.shard_histogram] + ([Path(stage.params["reference"])] if stage.params.get("reference") else [])
    return {"checkpoints": _files_fingerprint(checkpoints), "shards": _files_fingerprint(shards), "inputs": _files_fingerprint(others), "argv": stage.argv}


def eval_is_current(job: JobSpec, stage: StageSpec) -> tuple[bool, dict[str, Any]]:
    """(whether the last report already scores these inputs, the eval stage's state)."""
    state = read_job_state(DatasetLayout(job.dataset).job_state(stage.name), "eval")
    return bool(state) and state["inputs"] == _plain(eval_inputs(job, stage)), state


def _plain(value: Any) -> Any:
    """As the state file stores it (tuples as lists), to compare with what was read back."""
    import json

    return json.loads(json.dumps(value, default=str))
