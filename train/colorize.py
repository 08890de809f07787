"""`pipe colorize`: colour sketches of any size with trained draft (and refinement) checkpoints.

Each sketch is read as grey, scaled so its long side is the model's size, padded with white to a
square, and coloured in batches; the result is cropped back and resized to the sketch's own size.
Optional hints (RGBA PNGs, colour where given) go through the same placement, resampled as hints
(`place_hint`: alpha max-pooled, colour the mean of the given pixels), so a one-pixel hint stays a
full-strength hint at the model's size; a hint layer must have the sketch's own size (the rule
`pipe serve` applies), so nothing is stretched. With a refinement checkpoint, its generator gets the
draft generator's output as its `draft` input. A sketch that cannot be coloured (it does not decode,
its hint file is unusable) is skipped with the reason, and the others are coloured.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from manifests.atomic import write_bytes_atomic
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


@dataclass
class ColorizeResult:
    """What `colorize` did: the files it wrote, and each sketch it skipped with why."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def sketches_in(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
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


def output_path(out: Path, sketch: Path) -> Path:
    """Where the coloured image of `sketch` goes: OUT/<sketch name>.png."""
    return out / f"{sketch.stem}.png"


def read_sketch(path: Path) -> np.ndarray:
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise ValueError("not an image OpenCV can decode")
    return gray


def read_hint(path: Path | None, shape: tuple[int, int]) -> np.ndarray:
    """RGBA uint8 hint of the sketch's size (no hint: all transparent). A hint layer of another size
    is refused, as `pipe serve` refuses it: stretching it would move every hint off its place."""
    if path is None:
        return np.zeros((*shape, 4), np.uint8)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"hint {path.name} is not an image OpenCV can decode")
    if image.dtype == np.uint16:  # a 16-bit PNG: the same colours in 8 bits
        image = (image.astype(np.float32) / 257).round().astype(np.uint8)
    if image.ndim == 2 or image.shape[2] != 4:
        raise ValueError(f"hint {path.name} has no alpha channel: save it as RGBA, opaque where a colour is given")
    if image.shape[:2] != shape:
        raise ValueError(f"hint {path.name} is {image.shape[1]}x{image.shape[0]}, the sketch is {shape[1]}x{shape[0]}: "
                         f"give a hint layer of the sketch's size")
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)


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


@dataclass
class _Prepared:
    """One sketch ready for the generator: its line and hint at the model's size, and where it sits."""

    path: Path
    line: np.ndarray
    hint: np.ndarray
    placement: Placement


def colorize(sketches: list[Path], out: Path, draft_model: LoadedGenerator, refine_model: LoadedGenerator | None, hints: Path | None, device: torch.device,
             batch_size: int = 8, guess: tuple[np.ndarray, int] | None = None) -> ColorizeResult:
    """Colour every sketch with loaded generators (`train.inference.load_stage`) into OUT/<name>.png
    (`output_path`, written atomically); a sketch that cannot be read, or whose hint file is
    unusable, is skipped with the reason.

    `guess`: (a 512-bin colour histogram, a seed) to colour under hints guessed from the histogram (Fu et
    al.; `synth.guess`) instead of `hints`: drawn at the model's size, seeded by (seed, sketch name)."""
    for model in filter(None, (draft_model, refine_model)):
        if "palette" in model.recipe.inputs:
            raise ValueError(f"{model.config['recipe']} needs a reference palette, which pipe colorize does not take yet")
    size = max(draft_model.size, refine_model.size if refine_model else 0)
    out.mkdir(parents=True, exist_ok=True)
    result = ColorizeResult()
    prepared = _prepared_sketches(sketches, hints, guess, size, result.skipped)
    while chunk := list(islice(prepared, batch_size)):
        batch = {
            "line": torch.from_numpy(np.stack([item.line for item in chunk]))[:, None].float().div(255).to(device),
            "hint": torch.from_numpy(np.stack([item.hint for item in chunk])).permute(0, 3, 1, 2).float().div(255).to(device),
        }
        colour = colour_batch(draft_model, refine_model, batch, device, size)
        images = (colour.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        for item, image in zip(chunk, images):
            target = output_path(out, item.path)
            encoded = cv2.imencode(".png", cv2.cvtColor(unplace(image, item.placement, size), cv2.COLOR_RGB2BGR))[1]
            write_bytes_atomic(target, encoded.tobytes())  # a killed run leaves no half-written image
            result.written.append(target)
    return result


def _prepared_sketches(sketches: list[Path], hints: Path | None, guess: tuple[np.ndarray, int] | None, size: int,
                       skipped: list[tuple[Path, str]]) -> Iterator[_Prepared]:
    """Each sketch that reads, placed with its hint; the others go to `skipped` with why."""
    for path in sketches:
        try:
            sketch = read_sketch(path)
            line, placement = place(sketch, size, 255)
            if guess is not None:
                hint = _guessed_hint(guess, path.name, placement, size)
            else:
                hint, _ = place_hint(read_hint(hint_for(path, hints), sketch.shape), size)
        except ValueError as exc:
            skipped.append((path, str(exc)))
            continue
        yield _Prepared(path, line, hint, placement)


def _guessed_hint(guess: tuple[np.ndarray, int], name: str, placement: Placement, size: int) -> np.ndarray:
    """RGBA (size, size, 4): hints guessed from the histogram over the sketch's part of the model input
    (patch sizes in model pixels, as in training)."""
    counts, seed = guess
    inner_h, inner_w = placement.inner(size)
    guessed, _ = guess_hints(counts, [sample_rng(seed, "colorize", "histogram-guess", name)], inner_h, inner_w)
    hint = np.zeros((size, size, 4), np.uint8)
    hint[:inner_h, :inner_w] = guessed[0].permute(1, 2, 0).cpu().numpy()
    return hint


def hint_for(sketch: Path, hints: Path | None) -> Path | None:
    """The hint file of `sketch`: `hints` itself when it is a file, HINTS/<sketch name>.png in a folder (None: no hint)."""
    if hints is None:
        return None
    if hints.is_file():
        return hints
    candidate = hints / f"{sketch.stem}.png"
    return candidate if candidate.is_file() else None
