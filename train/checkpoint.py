"""Training checkpoints: one file holding everything a run needs to continue exactly, written atomically.

A checkpoint is a dict of state dicts (models, optimizers, grad scaler, EMA), the step, the random
generator states of Python, NumPy, torch and every CUDA device, and any JSON-ready extras (the
resolved config, the loader position). Everything in it is a tensor, a number, a string or a plain
container, so it loads with `torch.load(weights_only=True)` and opening one never runs code; the file
carries a SHA-256 of its bytes (train.checkpoint_file), so a damaged one is refused, never loaded as
other weights. It is written to a temporary name in the same folder and renamed, so a run killed
mid-save, or a full disk, leaves the previous checkpoint intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from extractors.ldm import FORMAT as LDM_FORMAT
from train.checkpoint_file import read_signed, write_signed

FORMAT = "pipe.checkpoint/2"
# Earlier pipe versions pickled NumPy's and Python's RNG objects: loading those needs full unpickling.
LEGACY_FORMAT = "pipe.checkpoint/1"
CONVERT_COMMAND = "pipe weights convert-checkpoint"
PAYLOAD_TYPES = {"step": int, "state": dict, "rng": dict, "extras": dict}
RNG_KEYS = ("python", "numpy", "torch")


def plain_rng(state: dict[str, Any]) -> dict[str, Any]:
    """`state` as weights-only data: NumPy's (name, uint32 keys, pos, has_gauss, cached) tuple becomes
    a dict with the keys as an int64 tensor; Python's getstate() tuple of ints is plain already."""
    numpy_state = state["numpy"]
    if isinstance(numpy_state, tuple):
        name, keys, pos, has_gauss, cached = numpy_state
        numpy_state = {"algorithm": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return {"python": state["python"], "numpy": numpy_state, "torch": state["torch"], "cuda": list(state.get("cuda") or [])}


def rng_state() -> dict[str, Any]:
    return plain_rng({
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    })


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].cpu().numpy().astype(np.uint32)
    np.random.set_state((numpy_state["algorithm"], keys, numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    # set_rng_state takes CPU byte tensors; a checkpoint read with map_location=cuda moved them.
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda.cpu() for cuda in state["cuda"]])


def save_checkpoint(path: Path, step: int, modules: dict[str, Any], extras: dict[str, Any] | None = None) -> None:
    """Write `modules` (anything with state_dict(): models, optimizers, scalers) and the run state.

    A full disk raises OSError(ENOSPC, "No space left on device", path); the previous file stays.
    """
    payload = {
        "format": FORMAT,
        "step": step,
        "state": {name: module.state_dict() for name, module in modules.items()},
        "rng": rng_state(),
        "extras": extras or {},
    }
    write_payload(path, payload)


def write_payload(path: Path, payload: dict[str, Any]) -> None:
    """Write a whole payload as `read_checkpoint` returns it (with its checksum), atomically."""
    write_signed(Path(path), payload)


def _describe_unsigned(path: Path, strings: set[str]) -> str:
    """Why a file without pipe's checksum is refused, from its pickle's strings (nothing of it runs)."""
    if LEGACY_FORMAT in strings:
        return (f"{path} is a checkpoint of an earlier pipe ({LEGACY_FORMAT}), which loads only by full unpickling (that runs any code a file holds): "
                f"if you trust where it came from, convert it once with `{CONVERT_COMMAND} {path}`")
    if FORMAT in strings:
        return f"{path} is damaged (truncated or corrupted): its checksum is missing"
    if LDM_FORMAT in strings:
        return f"{path} is a Line Detection Model file (lee2020 ldm, for `pipe extract --method ldm` and the line loss), not a pipe training checkpoint"
    return f"{path} is not a pipe checkpoint: give the checkpoints/last.pt that `pipe train` writes in ROOT/runs/NAME"


def check_payload(path: Path, payload: Any) -> None:
    """Raise ValueError naming the file when `payload` is not a whole pipe checkpoint payload."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(_describe_unsigned(path, set()))
    missing = [key for key in PAYLOAD_TYPES if key not in payload]
    if missing:
        raise ValueError(f"{path} is damaged: its payload has no {', '.join(missing)}")
    wrong = [f"{key} (a {type(payload[key]).__name__}, not a {kind.__name__})" for key, kind in PAYLOAD_TYPES.items() if not isinstance(payload[key], kind)]
    if wrong:
        raise ValueError(f"{path} is damaged: its payload's {', '.join(wrong)}")
    rng_missing = [key for key in RNG_KEYS if key not in payload["rng"]]
    if rng_missing:
        raise ValueError(f"{path} is damaged: its random generator states lack {', '.join(rng_missing)}")


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The whole payload of a checkpoint `save_checkpoint` wrote ({"format", "step", "state", "rng", "extras"}).

    Loads weights only (no code runs) after checking the file's checksum. Raises FileNotFoundError or
    ValueError naming the file when it is missing, damaged (checksum mismatch, truncated, a payload
    lacking a part), written by an earlier pipe (the message names the convert command), or not a pipe
    training checkpoint (a config.json, an LDM file, a pickle of other objects, anything else).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    payload = read_signed(path, map_location, _describe_unsigned)
    check_payload(path, payload)
    return payload


def restore_checkpoint(path: Path, payload: dict[str, Any], modules: dict[str, Any], restore_random: bool = True) -> dict[str, Any]:
    """Load a read payload's states into `modules` (same names as saved); returns {"step", "extras"}.

    Raises ValueError naming the file when it lacks a module or a state does not fit its module.
    """
    missing = sorted(set(modules) - set(payload["state"]))
    if missing:
        raise ValueError(f"{path} has no state for {', '.join(missing)}")
    for name, module in modules.items():
        try:
            module.load_state_dict(payload["state"][name])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            # load_state_dict's first line is a heading; the next names the first mismatch.
            raise ValueError(f"{path}: its {name} state does not fit this run's ({lines[min(1, len(lines) - 1)]})") from None
    if restore_random:
        try:
            restore_rng(payload["rng"])
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise ValueError(f"{path} is damaged: its random generator states cannot be restored ({exc})") from None
    return {"step": payload["step"], "extras": payload["extras"]}


def load_checkpoint(path: Path, modules: dict[str, Any], map_location: str | torch.device = "cpu", restore_random: bool = True) -> dict[str, Any]:
    """Load states into `modules` (same names as saved); returns {"step", "extras"}.

    Raises FileNotFoundError or ValueError with the file's name when it is missing, not a pipe
    checkpoint, or lacks a module the run needs.
    """
    return restore_checkpoint(path, read_checkpoint(path, map_location), modules, restore_random)
