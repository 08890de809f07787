"""Training checkpoints: one file holding everything a run needs to continue exactly, written atomically.

A checkpoint is a dict of state dicts (models, optimizers, grad scaler, EMA), the step, the random
generator states of Python, NumPy, torch and every CUDA device, and any JSON-ready extras (the
resolved config, the loader position). It is written to a temporary name in the same folder and
renamed, so a run killed mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from extractors.ldm import FORMAT as LDM_FORMAT
from manifests.atomic import atomic_target

FORMAT = "pipe.checkpoint/1"


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, step: int, modules: dict[str, Any], extras: dict[str, Any] | None = None) -> None:
    """Write `modules` (anything with state_dict(): models, optimizers, scalers) and the run state."""
    payload = {
        "format": FORMAT,
        "step": step,
        "state": {name: module.state_dict() for name, module in modules.items()},
        "rng": rng_state(),
        "extras": extras or {},
    }
    with atomic_target(Path(path), durable=True) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The whole payload of a checkpoint `save_checkpoint` wrote ({"format", "step", "state", "rng", "extras"}).

    Raises FileNotFoundError or ValueError naming the file when it is missing or not a pipe
    training checkpoint (a config.json, an LDM file, anything else).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    # The RNG states hold NumPy and Python objects, so this file is not loadable with weights_only;
    # only load checkpoints you wrote.
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except OSError:
        raise
    except Exception:  # noqa: BLE001 - a JSON file, an image, a truncated file: all the same to the user
        payload = None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        if isinstance(payload, dict) and payload.get("format") == LDM_FORMAT:
            raise ValueError(f"{path} is a Line Detection Model file (lee2020 ldm, for `pipe extract --method ldm` and the line loss), not a pipe training checkpoint")
        raise ValueError(f"{path} is not a pipe checkpoint: give the checkpoints/last.pt that `pipe train` writes in ROOT/runs/NAME")
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
        except (RuntimeError, ValueError, KeyError) as exc:
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
            # load_state_dict's first line is a heading; the next names the first mismatch.
            raise ValueError(f"{path}: its {name} state does not fit this run's ({lines[min(1, len(lines) - 1)]})") from None
    if restore_random:
        restore_rng(payload["rng"])
    return {"step": payload["step"], "extras": payload["extras"]}


def load_checkpoint(path: Path, modules: dict[str, Any], map_location: str | torch.device = "cpu", restore_random: bool = True) -> dict[str, Any]:
    """Load states into `modules` (same names as saved); returns {"step", "extras"}.

    Raises FileNotFoundError or ValueError with the file's name when it is missing, not a pipe
    checkpoint, or lacks a module the run needs.
    """
    return restore_checkpoint(path, read_checkpoint(path, map_location), modules, restore_random)
