"""`spray` artifacts: a colour from the image sprayed along 1..3 random strokes (colour bleeding).

Each stroke is a 4-point polyline wandering from a uniform start; its radius is uniform in 16..64 px.
Coverage falls off with the distance to the stroke and is speckled by noise from a recorded seed, so
the same parameters give the same spray on any device.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from synth.common import DrawInput, SynthContext, check_images

MIN_STROKES, MAX_STROKES = 1, 3
MIN_RADIUS, MAX_RADIUS = 16, 64
STROKE_POINTS = 4


def draw_spray_artifacts(rng: np.random.Generator, sample: DrawInput, context: SynthContext) -> dict:
    height, width = sample.height, sample.width
    strokes = []
    for _ in range(int(rng.integers(MIN_STROKES, MAX_STROKES + 1))):
        pick_y, pick_x = int(rng.integers(height)), int(rng.integers(width))
        y, x = float(rng.uniform(0, height - 1)), float(rng.uniform(0, width - 1))
        near = context.near_hint(rng, 1, 1, height, width)
        if near is not None:  # the stroke starts on a hint pixel
            y, x = float(near[0]), float(near[1])
        heading = float(rng.uniform(0, 2 * math.pi))
        points = [[round(y, 2), round(x, 2)]]
        for _ in range(STROKE_POINTS - 1):
            step = float(rng.uniform(0.1, 0.3)) * min(height, width)
            heading += float(rng.normal(0.0, 0.6))
            y = min(max(y + step * math.sin(heading), 0.0), height - 1.0)
            x = min(max(x + step * math.cos(heading), 0.0), width - 1.0)
            points.append([round(y, 2), round(x, 2)])
        strokes.append(
            {
                "color": [int(v) for v in sample.image[:, pick_y, pick_x].tolist()],
                "color_from": [pick_y, pick_x],
                "points": points,
                "radius": int(rng.integers(MIN_RADIUS, MAX_RADIUS + 1)),
                "density": float(rng.uniform(0.5, 0.9)),
                "noise_seed": int(rng.integers(2**31)),
            }
        )
    return {"strokes": strokes}


def stroke_distance(points: list[list[float]], height: int, width: int, device: torch.device, top: int = 0, left: int = 0) -> torch.Tensor:
    """float (H, W): each pixel's distance to the polyline through `points` (y, x), for the H x W
    window whose top-left pixel is (top, left) (the whole image by default)."""
    ys = torch.arange(top, top + height, dtype=torch.float32, device=device).view(height, 1)
    xs = torch.arange(left, left + width, dtype=torch.float32, device=device).view(1, width)
    best = torch.full((height, width), float("inf"), device=device)
    for (ay, ax), (by, bx) in zip(points[:-1], points[1:]):
        dy, dx = by - ay, bx - ax
        length2 = dy * dy + dx * dx
        t = ((ys - ay) * dy + (xs - ax) * dx) / length2 if length2 > 0 else torch.zeros_like(best)
        t = t.clamp(0, 1)
        distance = torch.sqrt((ys - ay - t * dy) ** 2 + (xs - ax - t * dx) ** 2)
        best = torch.minimum(best, distance)
    return best


def stroke_window(stroke: dict, height: int, width: int) -> tuple[slice, slice]:
    """The rows and columns a stroke can reach (its points' box grown by its radius, in the image):
    outside them its falloff is 0 and the image is left exactly as it was."""
    ys, xs = [p[0] for p in stroke["points"]], [p[1] for p in stroke["points"]]
    radius = stroke["radius"]
    rows = slice(max(0, math.floor(min(ys) - radius)), min(height, math.ceil(max(ys) + radius) + 1))
    columns = slice(max(0, math.floor(min(xs) - radius)), min(width, math.ceil(max(xs) + radius) + 1))
    return rows, columns


def apply_spray_artifacts(images: torch.Tensor, params: list[dict]) -> torch.Tensor:
    check_images(images, params)
    _, _, height, width = images.shape
    out = images.to(torch.float32)
    for index, sample in enumerate(params):
        for stroke in sample["strokes"]:
            rows, columns = stroke_window(stroke, height, width)
            if rows.start >= rows.stop or columns.start >= columns.stop:
                continue
            distance = stroke_distance(stroke["points"], rows.stop - rows.start, columns.stop - columns.start, images.device, rows.start, columns.start)
            falloff = (1 - distance / stroke["radius"]).clamp(0, 1)
            # The noise is drawn for the whole image (its values depend on their position in the stream).
            noise = torch.rand((height, width), generator=torch.Generator().manual_seed(stroke["noise_seed"]))[rows, columns].to(images.device)
            alpha = stroke["density"] * falloff.sqrt() * (0.4 + 0.6 * noise)
            color = torch.as_tensor(stroke["color"], dtype=torch.float32, device=images.device).view(3, 1, 1)
            window = out[index, :, rows, columns]
            out[index, :, rows, columns] = window * (1 - alpha) + color * alpha
    return out.round().clamp(0, 255).to(torch.uint8)
