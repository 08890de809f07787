"""Procedural flat-colour "illustrations" with dark outlines: the built-in demo data and test images.

They have what the stages care about in real anime illustrations (flat colour regions bounded by dark
lines, a pale background, a head-like figure), are fully determined by a seed, and need no download.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import cv2
import numpy as np

OUTLINE = (20, 16, 24)


def _color(rng: np.random.Generator, saturation: tuple[float, float], value: tuple[float, float]) -> tuple[int, int, int]:
    red, green, blue = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*saturation), rng.uniform(*value))
    return int(red * 255), int(green * 255), int(blue * 255)


def make_illustration(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An HxWx3 uint8 RGB picture: flat shapes and a simple figure, each outlined in near-black."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = _color(rng, (0.05, 0.25), (0.85, 1.0))
    thickness = max(2, round(min(width, height) / 220))
    for _ in range(int(rng.integers(5, 10))):
        color = _color(rng, (0.35, 0.9), (0.55, 1.0))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        kind = rng.integers(0, 3)
        if kind == 0:
            axes = (int(rng.integers(width // 12, width // 3)), int(rng.integers(height // 12, height // 3)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(image, center, axes, angle, 0, 360, color, -1, cv2.LINE_AA)
            cv2.ellipse(image, center, axes, angle, 0, 360, OUTLINE, thickness, cv2.LINE_AA)
        else:
            count = 3 if kind == 1 else int(rng.integers(4, 7))
            radius = rng.uniform(min(width, height) / 10, min(width, height) / 3)
            angles = np.sort(rng.uniform(0, 2 * np.pi, count))
            points = np.stack([center[0] + radius * np.cos(angles), center[1] + radius * np.sin(angles)], 1)
            points = points.astype(np.int32).reshape(-1, 1, 2)
            cv2.fillPoly(image, [points], color, cv2.LINE_AA)
            cv2.polylines(image, [points], True, OUTLINE, thickness, cv2.LINE_AA)
    _draw_figure(image, rng, thickness)
    return image


def _draw_figure(image: np.ndarray, rng: np.random.Generator, thickness: int) -> None:
    """A head with hair and two eyes, roughly where a portrait puts it."""
    height, width = image.shape[:2]
    radius = int(min(width, height) * rng.uniform(0.14, 0.22))
    cx = int(width * rng.uniform(0.35, 0.65))
    cy = int(height * rng.uniform(0.35, 0.55))
    body = _color(rng, (0.4, 0.8), (0.5, 0.9))
    cv2.ellipse(image, (cx, cy + 2 * radius), (int(radius * 1.3), radius), 0, 180, 360, body, -1, cv2.LINE_AA)
    cv2.ellipse(image, (cx, cy + 2 * radius), (int(radius * 1.3), radius), 0, 180, 360, OUTLINE, thickness, cv2.LINE_AA)
    skin = (250, 224, 205)
    cv2.circle(image, (cx, cy), radius, skin, -1, cv2.LINE_AA)
    hair = _color(rng, (0.5, 0.9), (0.4, 0.95))
    cv2.ellipse(image, (cx, cy - radius // 4), (int(radius * 1.1), int(radius * 0.95)), 0, 180, 360, hair, -1, cv2.LINE_AA)
    cv2.circle(image, (cx, cy), radius, OUTLINE, thickness, cv2.LINE_AA)
    iris = _color(rng, (0.6, 1.0), (0.5, 0.9))
    for side in (-1, 1):
        eye = (cx + side * radius // 2, cy + radius // 5)
        cv2.ellipse(image, eye, (radius // 6, radius // 4), 0, 0, 360, iris, -1, cv2.LINE_AA)
        cv2.ellipse(image, eye, (radius // 6, radius // 4), 0, 0, 360, OUTLINE, max(1, thickness - 1), cv2.LINE_AA)


def save_rgb(path: Path, rgb: np.ndarray, quality: int = 92) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix.lower() in (".jpg", ".jpeg") else []
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params):
        raise OSError(f"could not write {path}")


def write_demo_source(folder: Path, count: int = 24, seed: int = 0) -> dict[str, str]:
    """Write `count` good illustrations plus one input for each common way to be turned away.

    Returns {file name: the status or reason `pipe prepare` should give it}.
    """
    rng = np.random.default_rng(seed)
    expected: dict[str, str] = {}
    first = None
    for index in range(count):
        width, height = int(rng.integers(640, 1400)), int(rng.integers(640, 1400))
        picture = make_illustration(rng, width, height)
        first = picture if first is None else first
        name = f"illustration_{index:03d}.{'png' if index % 4 == 0 else 'jpg'}"
        save_rgb(folder / name, picture)
        expected[name] = "ok"

    assert first is not None
    save_rgb(folder / "trouble" / "same_bytes_as_000.png", first)
    expected["trouble/same_bytes_as_000.png"] = "duplicate"
    save_rgb(folder / "trouble" / "recompressed_000.jpg", first, quality=70)
    expected["trouble/recompressed_000.jpg"] = "near_duplicate"
    lines = np.where(np.abs(first.astype(int) - np.array(OUTLINE)).sum(2, keepdims=True) < 60, 0, 255)
    save_rgb(folder / "trouble" / "line_art.png", np.repeat(lines, 3, 2).astype(np.uint8))
    expected["trouble/line_art.png"] = "grayscale"
    save_rgb(folder / "trouble" / "thumbnail.jpg", make_illustration(rng, 300, 400))
    expected["trouble/thumbnail.jpg"] = "too_small"
    save_rgb(folder / "trouble" / "banner.jpg", make_illustration(rng, 1800, 600))
    expected["trouble/banner.jpg"] = "aspect_ratio"
    encoded = cv2.imencode(".jpg", make_illustration(rng, 800, 800))[1].tobytes()
    (folder / "trouble" / "cut_short.jpg").write_bytes(encoded[: len(encoded) // 2])
    expected["trouble/cut_short.jpg"] = "decode_error"
    (folder / "trouble" / "error_page.png").write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>")
    expected["trouble/error_page.png"] = "decode_error"
    return expected


def make_prepared_dataset(root: Path, count: int, size: int = 512, seed: int = 0) -> list[str]:
    """A dataset as `pipe prepare` leaves it: `count` generated size x size PNGs and their ok ledger rows.

    Written directly rather than through prepare, for extractor tests and benchmarks; returns the keys.
    """
    from manifests.atomic import write_bytes_atomic
    from manifests.layout import DatasetLayout
    from manifests.ledger import Ledger
    from manifests.schema import PREPARED
    from pipeline.prepare.stage import content_key

    layout = DatasetLayout(root)
    rows, keys = [], []
    for index in range(count):
        rgb = make_illustration(np.random.default_rng([seed, index]), size, size)
        data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
        key = content_key(data)
        path = layout.sample("prepared", key, "png")
        write_bytes_atomic(path, data)
        keys.append(key)
        rows.append({"key": key, "status": "ok", "source": f"generated/{seed}/{index}.png", "width": size, "height": size, "path": layout.relative(path), "dedupe_settled": True})
    ledger = Ledger(root, PREPARED)
    ledger.append(rows)
    ledger.compact()
    return keys
