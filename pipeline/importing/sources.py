"""Where the pairs of a paired dataset are: its layout, the split it keeps, one work item per pair.

Two layouts:

    side-by-side   SOURCE/**/<name>.<ext>           one image, colour and sketch as its left and right halves
    folders        SOURCE/color/**/<name>.<ext>     two folders; files pair up by their path without the
                   SOURCE/sketch/**/<name>.<ext>    extension (color/a/001.jpg with sketch/a/001.png)

A source keeps its split when its pairs sit under `train/` and `val/` (SOURCE/train/*.png,
SOURCE/train/color + SOURCE/train/sketch); pairs elsewhere get no split and `pipe shard` hashes
their key as it does for every other image.

A pair's id (the ledger's `pair`) is the absolute path of its side-by-side file or of its colour
file (of its sketch file when the colour is missing). Problems seen while listing (a missing half, two
files with one name) travel with the item, so each still gets its ledger row from the stage.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from manifests import reasons
from pipeline.errors import PipeError
from pipeline.runner import WorkItem
from pipeline.sources import input_files

# The folders whose pairs keep their split; the names `pipe shard` writes.
SPLIT_FOLDERS = ("train", "val")


class Layout(str, enum.Enum):
    side_by_side = "side-by-side"
    folders = "folders"


class Order(str, enum.Enum):
    """Which half of a side-by-side image is which, left first."""

    color_sketch = "color-sketch"
    sketch_color = "sketch-color"


@dataclass(frozen=True)
class PairFiles:
    """The files of one pair (absolute paths; the same file twice for side-by-side) and its split."""

    color: str | None
    sketch: str | None
    split: str | None = None
    # (reason, detail) decided while listing: the pair is rejected without reading anything.
    problem: tuple[str, str] | None = None

    @property
    def id(self) -> str:
        identity = self.color or self.sketch
        assert identity is not None
        return identity


def list_pairs(source: Path, layout: Layout, color_dir: str, sketch_dir: str, exclude: Path | None = None) -> list[WorkItem]:
    """One work item per pair of `source` (payload: PairFiles), in a deterministic order.

    Raises PipeError, before anything is written, for a source that is not there or not in the layout.
    """
    source = source.expanduser()
    if not source.exists():
        raise PipeError(f"source not found: {source}")
    if not source.is_dir():
        raise PipeError(f"the source of `pipe import pairs` is a folder of pairs, not a file: {source}")
    source = source.resolve()
    if exclude is not None and exclude.resolve() == source:
        raise PipeError(f"the dataset folder must not be the source itself: {source}")
    if layout is Layout.side_by_side:
        items = _side_by_side(source, exclude)
    else:
        items = _folders(source, color_dir, sketch_dir, exclude)
    if not items:
        raise PipeError(f"no files in {source}")
    return items


def _side_by_side(source: Path, exclude: Path | None) -> list[WorkItem]:
    items = []
    for item in input_files(source, exclude=exclude):
        relative = Path(item.payload).relative_to(source).parts
        split = relative[0] if len(relative) > 1 and relative[0] in SPLIT_FOLDERS else None
        items.append(WorkItem(id=item.id, payload=PairFiles(color=item.payload, sketch=item.payload, split=split)))
    return items


def pair_roots(source: Path, color_dir: str, sketch_dir: str) -> list[tuple[Path, str | None]]:
    """(folder holding color_dir/ and sketch_dir/, its split) for SOURCE and its train/ and val/ folders."""
    candidates = [(source, None), *((source / split, split) for split in SPLIT_FOLDERS)]
    roots = []
    for folder, split in candidates:
        has_color, has_sketch = (folder / color_dir).is_dir(), (folder / sketch_dir).is_dir()
        if has_color != has_sketch:
            there, missing = (color_dir, sketch_dir) if has_color else (sketch_dir, color_dir)
            raise PipeError(
                f"{folder} has a {there}/ folder but no {missing}/ folder: name the folders with --color-dir and --sketch-dir"
            )
        if has_color:
            roots.append((folder, split))
    if not roots:
        raise PipeError(
            f"{source} has no {color_dir}/ and {sketch_dir}/ folders (nor train/ or val/ folders holding them): "
            "name them with --color-dir and --sketch-dir, or use --layout side-by-side for images holding both halves"
        )
    return roots


def _folders(source: Path, color_dir: str, sketch_dir: str, exclude: Path | None) -> list[WorkItem]:
    if color_dir == sketch_dir:
        raise PipeError(f"--color-dir and --sketch-dir must differ (both are {color_dir!r})")
    items = []
    for folder, split in pair_roots(source, color_dir, sketch_dir):
        colors = _by_name(folder / color_dir, exclude)
        sketches = _by_name(folder / sketch_dir, exclude)
        for name in sorted(set(colors) | set(sketches)):
            color, sketch = colors.get(name, []), sketches.get(name, [])
            if len(color) > 1 or len(sketch) > 1:
                items += _ambiguous(color, sketch, split, folder)
                continue
            files = PairFiles(color[0] if color else None, sketch[0] if sketch else None, split)
            if files.color is None:
                files = PairFiles(None, files.sketch, split, (reasons.MISSING_COLOR, f"no file {name}.* in {folder / color_dir}"))
            elif files.sketch is None:
                files = PairFiles(files.color, None, split, (reasons.MISSING_SKETCH, f"no file {name}.* in {folder / sketch_dir}"))
            items.append(WorkItem(id=files.id, payload=files))
    return items


def _by_name(folder: Path, exclude: Path | None) -> dict[str, list[str]]:
    """Files below `folder` by their path inside it without the extension (`a/001`)."""
    names: dict[str, list[str]] = {}
    for item in input_files(folder, exclude=exclude):
        names.setdefault(Path(item.payload).relative_to(folder).with_suffix("").as_posix(), []).append(item.payload)
    return names


def _ambiguous(color: list[str], sketch: list[str], split: str | None, folder: Path) -> list[WorkItem]:
    """Two files of one folder share a name: which pairs with which is unknown, so none is imported."""
    shared = [path for group in (color, sketch) if len(group) > 1 for path in group]
    detail = "these files share one name, so which is the pair is unknown: " + ", ".join(Path(p).relative_to(folder).as_posix() for p in shared)
    items = [WorkItem(id=path, payload=PairFiles(path, None, split, (reasons.AMBIGUOUS_PAIR, detail))) for path in color]
    items += [WorkItem(id=path, payload=PairFiles(None, path, split, (reasons.AMBIGUOUS_PAIR, detail))) for path in sketch]
    return items
