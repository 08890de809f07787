"""`pipe colorize`: colour sketches of any size with trained draft (and refinement) checkpoints.

Each sketch is read as grey, scaled so its long side is the model's size, padded with white to a
square, and coloured in batches; the result is cropped back and resized to the sketch's own size.
Optional hints (RGBA PNGs, colour where given) go through the same placement, resampled as hints
(`place_hint`: alpha max-pooled, colour the mean of the given pixels), so a one-pixel hint stays a
full-strength hint at the model's size. With a refinement
checkpoint, its generator gets the draft generator's output as its `draft` input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from manifests.seeding import sample_rng
from synth.guess import guess_hints
from train.inference import LoadedGenerator
from train.inputs import generator_input, resize_batch, resize_hint

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass(frozen=True)
class Placement:
    """Where a sketch of `height` x `width` sits in the square model input: scaled by `scale`, at the top left."""

    height: int
    width: int
    scale: float

    def inner(self, size: int) -> tuple[int, int]:
        return min(size, round(self.height * self.scale)), min(size, round(self.width * self.scale))


def sketches_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if files:
            return files
    raise FileNotFoundError(f"no sketches at {path} (a PNG/JPEG file or a folder of them)")


def place(image: np.ndarray, size: int, fill: float) -> tuple[np.ndarray, Placement]:
    """Scale `image` (H, W[, C]) so its long side is `size`, pad to size x size with `fill`.

    An RGBA image is a hint layer (alpha = where given) and goes through `place_hint` (never
    averaged; padded with "nothing given"), whoever places it: colorize, serve, eval."""
    if image.ndim == 3 and image.shape[2] == 4:
        return place_hint(image, size)
    height, width = image.shape[:2]
    scale = size / max(height, width)
    placement = Placement(height, width, scale)
    inner_h, inner_w = placement.inner(size)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    resized = cv2.resize(image, (inner_w, inner_h), interpolation=interpolation)
    canvas = np.full((size, size, *image.shape[2:]), fill, dtype=image.dtype)
    canvas[:inner_h, :inner_w] = resized
    return canvas, placement


def _hint_resized(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 RGBA (H, W, 4) at height x width by `resize_hint` (alpha max-pooled, colour the mean of
    the given pixels): a one-pixel hint stays one full-strength hint at any scale."""
    tensor = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1)[None].float().div(255)
    resized = resize_hint(tensor, (height, width))[0].permute(1, 2, 0).mul(255).round()
    return resized.to(torch.uint8).numpy()


def place_hint(hint: np.ndarray, size: int) -> tuple[np.ndarray, Placement]:
    """`place` for an RGBA hint (H, W, 4): scaled by `resize_hint`, never averaged, padded with
    "nothing given" (alpha 0)."""
    height, width = hint.shape[:2]
    placement = Placement(height, width, size / max(height, width))
    inner_h, inner_w = placement.inner(size)
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    canvas[:inner_h, :inner_w] = _hint_resized(hint, inner_h, inner_w)
    return canvas, placement


def unplace(image: np.ndarray, placement: Placement, size: int) -> np.ndarray:
    inner_h, inner_w = placement.inner(size)
    crop = image[:inner_h, :inner_w]
    interpolation = cv2.INTER_AREA if placement.scale > 1 else cv2.INTER_CUBIC
    return cv2.resize(crop, (placement.width, placement.height), interpolation=interpolation)


def read_sketch(path: Path) -> np.ndarray:
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError(f"cannot read {path} as an image")
    return gray


def read_hint(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    """RGBA uint8 hint of the sketch's size (no hint: all transparent)."""
    if path is None:
        return np.zeros((*shape, 4), np.uint8)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"cannot read hint {path}")
    if image.ndim == 2 or image.shape[2] == 3:
        raise ValueError(f"hint {path} has no alpha channel: save it as RGBA, opaque where you give a colour")
    rgba = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if rgba.shape[:2] != shape:
        rgba = _hint_resized(rgba, *shape)
    return rgba


@torch.no_grad()
def run_generator(loaded: LoadedGenerator, batch: dict, device: torch.device) -> torch.Tensor:
    """Float [0, 1] RGB (B, 3, S, S) from a batch of [0, 1] tensors at the generator's size."""
    resized = resize_batch(batch, loaded.size)  # the hint max-pooled, never averaged
    output = loaded.generator(generator_input(resized, loaded.recipe.inputs).to(device))
    return ((output + 1) / 2).clamp(0, 1)


def colour_batch(draft: LoadedGenerator, refine: LoadedGenerator | None, batch: dict, device: torch.device, size: int) -> torch.Tensor:
    """Float [0, 1] RGB (B, 3, size, size): the draft model's colouring, refined when `refine` is given
    (its `draft` input is the draft model's output)."""
    colour = run_generator(draft, batch, device)
    if refine is not None:
        colour = run_generator(refine, {**batch, "draft": _at_size(colour, size)}, device)
    return _at_size(colour, size)


def _at_size(images: torch.Tensor, size: int) -> torch.Tensor:
    return images if images.shape[-1] == size else F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)


def colorize(sketches: list[Path], out: Path, draft_model: LoadedGenerator, refine_model: LoadedGenerator | None, hints: Path | None, device: torch.device,
             batch_size: int = 8, guess: tuple[np.ndarray, int] | None = None) -> list[Path]:
    """Colour every sketch with loaded generators (`train.inference.load_stage`); returns the written files (OUT/<name>.png).

    `guess`: (a 512-bin colour histogram, a seed) to colour under hints guessed from the histogram (Fu et
    al.; `synth.guess`) instead of `hints`: drawn at the model's size, seeded by (seed, sketch name)."""
    for model in filter(None, (draft_model, refine_model)):
        if "palette" in model.recipe.inputs:
            raise ValueError(f"{model.config['recipe']} needs a reference palette, which pipe colorize does not take yet")
    size = max(draft_model.size, refine_model.size if refine_model else 0)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, len(sketches), batch_size):
        chunk = sketches[start : start + batch_size]
        lines, hint_images, placements = [], [], []
        for path in chunk:
            sketch = read_sketch(path)
            hint_path = _hint_for(path, hints)
            placed, placement = place(sketch, size, 255)
            if guess is not None:
                hint = _guessed_hint(guess, path.name, placement, size)
            else:
                hint, _ = place_hint(read_hint(hint_path, sketch.shape), size)
            lines.append(placed)
            hint_images.append(hint)
            placements.append(placement)
        batch = {
            "line": torch.from_numpy(np.stack(lines))[:, None].float().div(255).to(device),
            "hint": torch.from_numpy(np.stack(hint_images)).permute(0, 3, 1, 2).float().div(255).to(device),
        }
        colour = colour_batch(draft_model, refine_model, batch, device, size)
        images = (colour.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        for path, image, placement in zip(chunk, images, placements):
            target = out / f"{path.stem}.png"
            cv2.imwrite(str(target), cv2.cvtColor(unplace(image, placement, size), cv2.COLOR_RGB2BGR))
            written.append(target)
    return written


def _guessed_hint(guess: tuple[np.ndarray, int], name: str, placement: Placement, size: int) -> np.ndarray:
    """RGBA (size, size, 4): hints guessed from the histogram over the sketch's part of the model input
    (patch sizes in model pixels, as in training)."""
    counts, seed = guess
    inner_h, inner_w = placement.inner(size)
    guessed, _ = guess_hints(counts, [sample_rng(seed, "colorize", "histogram-guess", name)], inner_h, inner_w)
    hint = np.zeros((size, size, 4), np.uint8)
    hint[:inner_h, :inner_w] = guessed[0].permute(1, 2, 0).cpu().numpy()
    return hint


def _hint_for(sketch: Path, hints: Path | None) -> Path | None:
    if hints is None:
        return None
    if hints.is_file():
        return hints
    candidate = hints / f"{sketch.stem}.png"
    return candidate if candidate.is_file() else None
