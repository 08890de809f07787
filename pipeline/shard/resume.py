"""Resuming `pipe shard ROOT` as recorded: options left off the command line take their recorded values.

ROOT/shards/_config.json records the options the shards were made with (`ShardConfig.fingerprint`).
A resume that gives no option takes every recorded one, so `pipe shard ROOT` carries on what the first
run started; an option given on the command line is kept, and the session refuses it with its one-line
change message if it differs from the record. `--lines` and `--hints` name a set: the same set in
another order is no change, and the recorded order is the one used (it decides the per-sample draws,
so the resumed shards are the bytes an uninterrupted run gives). `--redo` takes nothing from the record.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from manifests.layout import DatasetLayout
from pipeline.errors import PipeError
from pipeline.recorded_options import DamagedRecord, parse_digested_json, shown
from pipeline.shard.config import OPTION_FLAGS, ShardConfig

# Fingerprint key -> the `pipe shard` parameter that sets it (what the command line may have given).
PARAMETERS = {
    "lines": "lines", "gray_share": "gray_share", "equalize_share": "equalize_share", "min_jitter": "jitter", "hints": "hints",
    "no_hint_share": "no_hint_share", "artifacts": "artifacts", "val_fraction": "val", "max_samples": "shard_samples",
    "max_bytes": "shard_mb", "seed": "seed", "histogram_images": "histogram_images", "png_compression": "png_compression",
    "artifacts_near_hints": "artifacts_near_hints", "jpeg": "jpeg", "jpeg_quality": "jpeg_quality", "lean_train": "lean_train",
}
# Options recorded as None when they do not apply (no histogram hints, no JPEG members): nothing to take.
UNSET_WHEN_NONE = ("histogram_images", "jpeg_quality")
LINE_FIELDS = {"gray_share": "gray_share", "equalize_share": "equalize_share", "min_jitter": "min_jitter"}


def recorded_shard_options(root: Path) -> dict[str, Any]:
    """The options shards/_config.json records ({} before the first run)."""
    path = DatasetLayout(root).shard_config
    if not path.is_file():
        return {}
    try:
        return parse_digested_json(path.read_bytes().decode())[0]
    except (DamagedRecord, UnicodeDecodeError) as exc:
        raise PipeError(f"{path} is damaged ({exc}): add --redo to start over") from None


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _same_set(key: str, recorded: Any, wanted: Any) -> bool:
    """Whether a given --lines or --hints names the recorded set in another order."""
    if key not in ("lines", "hints") or not isinstance(recorded, list):
        return False
    as_set = (lambda v: {tuple(pair) for pair in v}) if key == "lines" else set
    try:
        return len(recorded) == len(wanted) and as_set(_plain(recorded)) == as_set(_plain(wanted))
    except TypeError:  # a hand-edited record of another shape: the session names the change
        return False


def _with_value(config: ShardConfig, key: str, value: Any) -> ShardConfig:
    """`config` with fingerprint option `key` set to its recorded JSON `value`."""
    if key == "lines":
        return dataclasses.replace(config, lines=dataclasses.replace(config.lines, weights=tuple((name, float(weight)) for name, weight in value)))
    if key in LINE_FIELDS:
        return dataclasses.replace(config, lines=dataclasses.replace(config.lines, **{LINE_FIELDS[key]: value}))
    if key in ("hints", "artifacts", "jpeg"):
        value = tuple(value)
    return dataclasses.replace(config, **{key: value})


def _label(key: str, value: Any) -> str:
    if key == "max_bytes":
        return f"--shard-mb {value / (1024 * 1024):g}"
    return f"{OPTION_FLAGS[key]} {shown(value)}"


def with_recorded(config: ShardConfig, recorded: dict[str, Any], given: set[str]) -> tuple[ShardConfig, list[str]]:
    """`config` with every option the command line did not give (`given`: parameter names) set to its recorded
    value, and a given --lines/--hints that is the recorded set put in the recorded order; also the options
    taken from the record, as the user would type them (only those that change what this run uses)."""
    wanted, taken = config.fingerprint(), []
    for key, value in recorded.items():
        if key not in PARAMETERS or (value is None and key in UNSET_WHEN_NONE) or _plain(wanted.get(key)) == _plain(value):
            continue
        if PARAMETERS[key] in given and not _same_set(key, value, wanted.get(key)):
            continue  # the session refuses it, naming the change
        try:
            config = _with_value(config, key, value)
        except (TypeError, ValueError) as exc:
            raise PipeError(f"{DatasetLayout(config.root).shard_config} records {OPTION_FLAGS[key]} {shown(value)}, which is not valid ({exc}): add --redo to start over") from None
        if PARAMETERS[key] not in given:
            taken.append(_label(key, value))
    return config, taken
