"""Converting checkpoints of earlier pipe versions (pipe.checkpoint/1) to the weights-only format.

Those files pickled NumPy's RNG state and Python tuples with full pickle, so reading them means
`torch.load(weights_only=False)`, which runs whatever code the file holds. This module is the only
place pipe does that, and only when the user runs `pipe weights convert-checkpoint` on a file they
trust; everything else refuses such files with a line naming that command.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from train.checkpoint import FORMAT, LEGACY_FORMAT, check_payload, plain_rng, read_checkpoint
from train.checkpoint_file import pickle_strings, signed_bytes, write_signed


def is_legacy_checkpoint(path: Path) -> bool:
    """Whether the file's pickle names the earlier format (read without running any of it)."""
    strings = pickle_strings(Path(path).read_bytes())
    return strings is not None and LEGACY_FORMAT in strings


def convert_legacy_checkpoint(source: Path, output: Path) -> dict[str, Any]:
    """Read `source` WITH FULL UNPICKLING (it runs the file's code) and write it to `output` in the
    current format, weights unchanged; returns the new payload. Raises ValueError naming the file
    when it is not a pipe.checkpoint/1 file or its contents would still need full unpickling."""
    if not is_legacy_checkpoint(source):
        raise ValueError(f"{source} is not a checkpoint of an earlier pipe ({LEGACY_FORMAT}): refused without loading it")
    try:
        old = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged old file raises
        raise ValueError(f"{source} is damaged (truncated or corrupted): {type(exc).__name__}") from None
    if not isinstance(old, dict) or old.get("format") != LEGACY_FORMAT:
        raise ValueError(f"{source} is not a checkpoint of an earlier pipe ({LEGACY_FORMAT})")
    payload = {**old, "format": FORMAT}
    check_payload(Path(source), payload)
    try:
        payload["rng"] = plain_rng(payload["rng"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{source} is damaged: its random generator states are not an earlier pipe's ({exc})") from None
    try:  # prove the new file loads as weights alone before it replaces anything
        torch.load(io.BytesIO(signed_bytes(payload)), weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{source} holds objects beyond weights and plain data, so it cannot be converted ({str(exc).splitlines()[0]})") from None
    write_signed(Path(output), payload)
    return read_checkpoint(output)
