"""FID Inception features of a folder of images, for `pipe fid`: the files, decoding, batching, and a
cache per folder keyed by its file list (names, sizes, modification times), the FID implementation,
the weights file and the device type.

Images are decoded as the reference packages decode them (PIL, converted to RGB), so the same files
give the same pixels; one that does not decode is skipped and named.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from manifests.atomic import write_bytes_atomic
from train.metrics.inception_features import InceptionFeatures

# pytorch-fid's list (clean-fid's is the same); matched without regard to case.
IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
# Bumped whenever the features of the same files could change (preprocessing, layout, decoding).
FEATURES_VERSION = 2
CACHE_ENV = "PIPE_FID_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "pipe" / "fid-features")


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files of `folder` (and of its sub-folders with `recursive`), in name order."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder} not found")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        where = "in it or its sub-folders" if recursive else "in it (--recursive looks in sub-folders too)"
        raise ValueError(f"{folder} holds no images {where}; looked for {', '.join(IMAGE_SUFFIXES)}")
    return files


def read_rgb(path: Path) -> np.ndarray:
    """H x W x 3 uint8, as pytorch-fid, torch-fidelity and clean-fid read a file (PIL, .convert("RGB"))."""
    from PIL import Image

    with Image.open(path) as image:
        return np.array(image.convert("RGB"))


def _decoded(files: list[Path], workers: int, window: int) -> Iterator[tuple[Path, np.ndarray | None, str | None]]:
    """(file, pixels or None, why not) in file order, decoded by `workers` threads at most `window` ahead."""

    def load(path: Path) -> tuple[np.ndarray | None, str | None]:
        try:
            return read_rgb(path), None
        except Exception as exc:  # noqa: BLE001 - whatever the bytes are, the file is skipped and named
            return None, f"{type(exc).__name__}: {exc}".replace("\n", " ")

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending = []
        for path in files:
            pending.append((path, pool.submit(load, path)))
            if len(pending) >= window:
                first, future = pending.pop(0)
                yield (first, *future.result())
        for path, future in pending:
            yield (path, *future.result())


@dataclass
class FolderFeatures:
    """The features of a folder's readable images, and the files skipped with why."""

    folder: Path
    features: np.ndarray  # float32 (N, 2048), the network's values, in file order
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    cached: bool = False


def cache_key(folder: Path, files: list[Path], extractor: InceptionFeatures, weights: Path) -> str:
    """Changes when any file is added, removed, rewritten or touched, or the implementation, the
    weights file or the device type changes."""
    listing = []
    for path in files:
        stat = path.stat()
        listing.append([path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns])
    weights_stat = weights.stat()
    identity = {"version": FEATURES_VERSION, "impl": extractor.impl, "device": extractor.device.type,
                "weights": [weights.name, weights_stat.st_size, weights_stat.st_mtime_ns], "files": listing}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _cache_path(cache_dir: Path, folder: Path, key: str) -> Path:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(folder).resolve().name)[:40] or "folder"
    return cache_dir / f"{name}-{key[:20]}.npz"


def _read_cache(path: Path, folder: Path) -> FolderFeatures | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            features, names = stored["features"].astype(np.float32), [str(n) for n in stored["names"]]
            skipped = [(str(n), str(w)) for n, w in zip(stored["skipped_names"], stored["skipped_why"])]
    except (OSError, KeyError, ValueError):
        return None  # unreadable or from another version: computed again and rewritten
    if features.ndim != 2 or features.shape[0] != len(names):
        return None
    return FolderFeatures(folder, features, names, skipped, cached=True)


def _write_cache(path: Path, result: FolderFeatures) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, features=result.features.astype(np.float32),
             names=np.array(result.names, dtype=str), skipped_names=np.array([n for n, _ in result.skipped], dtype=str),
             skipped_why=np.array([w for _, w in result.skipped], dtype=str))
    write_bytes_atomic(path, buffer.getvalue())


def folder_features(folder: Path, extractor: InceptionFeatures, weights: Path, *, files: list[Path] | None = None, recursive: bool = False,
                    cache_dir: Path | None = None, workers: int = 4, on_image: Callable[[int], None] | None = None) -> FolderFeatures:
    """Features of every readable image of `folder` (`files`, default: `image_files(folder, recursive)`),
    from the cache when `cache_dir` holds them.

    `on_image(count)` is called as images are done (for a progress bar). Images go through the network
    `extractor.batch_size` at a time, each prepared (resized) on its own, so a folder may hold images
    of any sizes.
    """
    folder = Path(folder)
    files = files if files is not None else image_files(folder, recursive)
    path = None
    if cache_dir is not None:
        path = _cache_path(Path(cache_dir), folder, cache_key(folder, files, extractor, weights))
        cached = _read_cache(path, folder) if path.is_file() else None
        if cached is not None:
            if on_image is not None:
                on_image(len(files))
            return cached
    chunks, inputs, names, skipped = [], [], [], []
    for file, pixels, why in _decoded(files, workers, window=max(2 * extractor.batch_size, 8)):
        name = file.relative_to(folder).as_posix()
        if pixels is None:
            skipped.append((name, why or "unreadable"))
        else:
            inputs.append(extractor.preprocess(torch.from_numpy(pixels).permute(2, 0, 1)[None]))
            names.append(name)
            if len(inputs) == extractor.batch_size:
                chunks.append(extractor.network_features(torch.cat(inputs)).astype(np.float32))  # exact: float32 out of the network
                inputs = []
        if on_image is not None:
            on_image(1)
    if inputs:
        chunks.append(extractor.network_features(torch.cat(inputs)).astype(np.float32))
    features = np.concatenate(chunks) if chunks else np.zeros((0, 2048), np.float32)
    result = FolderFeatures(folder, features, names, skipped)
    if path is not None:
        _write_cache(path, result)
    return result
