"""The options a stage's results depend on, as recorded beside its ledger and compared on resume.

`StageSession` checks and saves them (pipeline.session); this module says what a record is, what
counts as a change, and how a value is shown to the user.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RecordedOptions:
    """The options that decide a stage's results, recorded with its ledger so a resume cannot mix them.

    `values` maps an option to a JSON value. An option only one side has (a method added to an
    extraction, an option a newer pipe added) is no change: it is new work, and is added to the record.
    `path` is where the record lives (default ROOT/.pipe/options/<session name>.json); `labels` says how
    the user writes an option whose key is not already its flag.
    """

    values: Mapping[str, Any]
    path: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


def options_json(values: Mapping[str, Any]) -> str:
    return json.dumps(dict(values), sort_keys=True, indent=1) + "\n"


def option_changes(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(option, recorded value, wanted value) of every option both have with different values."""
    def plain(value: Any) -> Any:
        return json.loads(json.dumps(value))  # tuples and lists alike, as the record stores them

    return [(key, recorded[key], value) for key, value in sorted(wanted.items()) if key in recorded and plain(recorded[key]) != plain(value)]


def shown(value: Any) -> str:
    """An option value as the user would type it: `0.3,0.5`, `xdog=2.0,dilate=1.0`, `none`."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return ",".join("=".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in value)
    return str(value)
