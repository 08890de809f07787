"""The options a stage's results depend on, as recorded beside its ledger and compared on resume.

`StageSession` checks and saves them (pipeline.session); this module says what a record is, what
counts as a change, and how a value is shown to the user. A record carries `_digest`, the SHA-256 of
the canonical JSON of the rest, so a flipped bit that still leaves valid JSON (a digit of a threshold)
is caught when the record is read, not taken as the options the ledger was made with.
"""

from __future__ import annotations

import hashlib
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


DIGEST_FIELD = "_digest"


class DamagedRecord(ValueError):
    """A JSON record pipe wrote whose content no longer matches its digest, or that no longer parses."""


def json_digest(values: Mapping[str, Any]) -> str:
    canonical = json.dumps(dict(values), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def options_json(values: Mapping[str, Any]) -> str:
    """The record's text: the values and their digest (a digest already among them is replaced)."""
    plain = {key: value for key, value in values.items() if key != DIGEST_FIELD}
    return json.dumps({**plain, DIGEST_FIELD: json_digest(plain)}, sort_keys=True, indent=1, default=str) + "\n"


def parse_digested_json(text: str) -> tuple[dict[str, Any], bool]:
    """(values without the digest, whether there was a digest); DamagedRecord when it does not hold.

    A record without `_digest` was written by an older pipe: it is read as it is."""
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise DamagedRecord(f"not valid JSON ({exc})") from None
    if not isinstance(values, dict):
        raise DamagedRecord("not a JSON object")
    if DIGEST_FIELD not in values:
        if any(_one_bit_from(key, DIGEST_FIELD) for key in values):  # a flip renamed the digest: not an older pipe's record
            raise DamagedRecord(f"its {DIGEST_FIELD} field is damaged")
        return values, False
    recorded = values.pop(DIGEST_FIELD)
    if recorded != json_digest(values):
        raise DamagedRecord("its content does not match its digest")
    return values, True


def _one_bit_from(text: str, wanted: str) -> bool:
    if len(text) != len(wanted):
        return False
    differing = [ord(a) ^ ord(b) for a, b in zip(text, wanted) if a != b]
    return len(differing) == 1 and differing[0] & (differing[0] - 1) == 0


def read_digested_json(path: Path) -> dict[str, Any]:
    """A record pipe wrote with `options_json`; DamagedRecord naming what is wrong with it."""
    try:
        text = path.read_bytes().decode()
    except UnicodeDecodeError:
        raise DamagedRecord("not text") from None
    return parse_digested_json(text)[0]


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
