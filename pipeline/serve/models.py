"""The checkpoints a server colours with, and one forward pass over a batch of requests.

Each request's sketch and hint layer are placed in the model's square input the way `pipe colorize`
places them (`train.colorize.place`: long side scaled to the model's size, white padding), so
requests of any size share one batch; each output is cropped and resized back to its sketch's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from train.colorize import place, run_generator, unplace
from train.inference import LoadedGenerator, load_stage

Stage = Literal["draft", "final"]
STAGES: tuple[str, ...] = ("draft", "final")


@dataclass(frozen=True)
class Job:
    """One request to colour: grey sketch (H, W) at the size it is coloured at, RGBA hint layer
    (H, W, 4) or None, and the stage wanted."""

    sketch: np.ndarray
    hints: np.ndarray | None
    stage: Stage


@dataclass
class ServedModels:
    """The draft generator, the optional refinement generator fed the draft's output, and their device."""

    draft: LoadedGenerator
    refine: LoadedGenerator | None
    device: torch.device
    paths: dict[str, str]

    @classmethod
    def load(cls, draft: Path, refine: Path | None, device: torch.device, weights: str = "auto") -> "ServedModels":
        """Both checkpoints through `train.inference.load_stage` (ValueError names a misplaced one)."""
        loaded_draft = load_stage(draft, "draft", device, weights)
        loaded_refine = load_stage(refine, "refine", device, weights) if refine is not None else None
        paths = {"draft": shown_path(draft), **({"refine": shown_path(refine)} if refine is not None else {})}
        return cls(loaded_draft, loaded_refine, device, paths)

    @property
    def models(self) -> list[tuple[str, LoadedGenerator]]:
        return [("draft", self.draft)] + ([("refine", self.refine)] if self.refine is not None else [])

    @property
    def size(self) -> int:
        """The square size requests are placed at: the larger model's."""
        return max(model.size for _, model in self.models)

    @property
    def takes_hints(self) -> bool:
        return any(model.recipe.takes_hints for _, model in self.models)

    def palette_problem(self) -> str | None:
        """Why these models cannot colour here (a recipe that reads a reference palette), or None."""
        needing = [model.name for _, model in self.models if "palette" in model.recipe.inputs]
        if not needing:
            return None
        return f"{', '.join(needing)} needs a reference palette, which pipe colorize does not support yet: serve a recipe that colours from the line (and hints) alone"

    def describe(self) -> list[dict]:
        """One entry per loaded checkpoint, for GET /api/models."""
        return [
            {
                "role": role,
                "name": model.name,
                "recipe": model.config["recipe"],
                "stage": model.config["stage"],
                "size": model.size,
                "step": model.step,
                "weights": model.weights,
                "inputs": list(model.recipe.inputs),
                "takes_hints": model.recipe.takes_hints,
                "needs_palette": "palette" in model.recipe.inputs,
                "checkpoint": self.paths.get(role, ""),
            }
            for role, model in self.models
        ]

    @torch.no_grad()
    def colour(self, jobs: Sequence[Job]) -> list[np.ndarray]:
        """RGB uint8 outputs, each of its sketch's size: the draft for every job, refined for the "final" ones."""
        size = self.size
        lines, hints, placements = [], [], []
        for job in jobs:
            line, placement = place(job.sketch, size, 255)
            hint = place(job.hints, size, 0)[0] if job.hints is not None else np.zeros((size, size, 4), np.uint8)
            lines.append(line)
            hints.append(hint)
            placements.append(placement)
        batch = {
            "line": torch.from_numpy(np.stack(lines))[:, None].float().div(255).to(self.device),
            "hint": torch.from_numpy(np.stack(hints)).permute(0, 3, 1, 2).float().div(255).to(self.device),
        }
        colour = _at_size(run_generator(self.draft, batch, self.device), size)
        final = [i for i, job in enumerate(jobs) if job.stage == "final"]
        if self.refine is not None and final:
            index = torch.tensor(final, device=self.device)
            subset = {key: value[index] for key, value in batch.items()}
            refined = run_generator(self.refine, {**subset, "draft": colour[index]}, self.device)
            colour = colour.clone()
            colour[index] = _at_size(refined, size)
        images = (colour.permute(0, 2, 3, 1).float().cpu().numpy() * 255).round().astype(np.uint8)
        return [unplace(image, placement, size) for image, placement in zip(images, placements)]


def shown_path(path: Path) -> str:
    """How a checkpoint is named to the page: as the user gave it when that was relative, else
    relative to the current directory, else from its run (runs/NAME/...), else its file name;
    never an absolute path of the server machine."""
    if not path.is_absolute() and ".." not in path.parts:
        return path.as_posix()
    resolved, here = path.resolve(), Path.cwd()
    if here != Path(here.anchor) and resolved.is_relative_to(here):
        return resolved.relative_to(here).as_posix()
    folders = resolved.parts[:-1]
    if "runs" in folders:
        last_runs = len(folders) - 1 - folders[::-1].index("runs")
        return Path(*resolved.parts[last_runs:]).as_posix()
    return resolved.name


def _at_size(images: torch.Tensor, size: int) -> torch.Tensor:
    return images if images.shape[-1] == size else F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
