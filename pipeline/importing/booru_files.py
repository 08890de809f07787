"""Where a dump keeps each post's file, and how the file is put under ROOT/raw/ (link or copy).

Layouts: `danbooru20xx` (the Danbooru20xx releases: `original/0NNN/<id>.<ext>`, NNN = id % 1000 in
four digits) and `flat` (`<id>.<ext>` or `<md5>.<ext>` directly in SOURCE). The stored file goes in
through a temporary name and a rename, so ROOT/raw/ never holds half a file, as after a crawl.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path

LAYOUTS = ("danbooru20xx", "flat")
LINK_MODES = ("auto", "copy", "hardlink", "symlink")
# Linux's FICLONE ioctl: a copy-on-write clone (btrfs, XFS) that costs no space until either side changes.
_FICLONE = 0x40049409


class LinkError(OSError):
    """The file could not be stored the way --link asked (a hard link across filesystems)."""


def candidate_names(post_id: int, md5: str | None, ext: str | None) -> list[str]:
    """File names a dump may use for the post (`jpeg` dumps of `jpg` posts included)."""
    exts = [ext, "jpeg"] if ext == "jpg" else [ext]
    stems = [str(post_id)] + ([md5.lower()] if md5 else [])
    return [f"{stem}.{e}" for stem in stems for e in exts if e]


def find_file(source: Path, layout: str, post_id: int, md5: str | None, ext: str | None) -> Path | None:
    """The post's file in SOURCE under `layout`, or None when it is not there."""
    folder = source / "original" / f"{post_id % 1000:04d}" if layout == "danbooru20xx" else source
    for name in candidate_names(post_id, md5, ext):
        path = folder / name
        if path.is_file():
            return path
    return None


def store_file(source: Path, destination: Path, mode: str, tmp_dir: Path) -> str:
    """Put `source` at `destination` as `mode` says; returns how it was stored (hardlink, reflink, copy, symlink)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = tmp_dir / f"{destination.name}.{os.getpid()}.tmp"
    temporary.unlink(missing_ok=True)
    how = _place(source, temporary, mode)
    os.replace(temporary, destination)
    return how


def _place(source: Path, temporary: Path, mode: str) -> str:
    if mode == "symlink":
        os.symlink(source.resolve(), temporary)
        return "symlink"
    if mode in ("auto", "hardlink"):
        try:
            os.link(source, temporary)
            return "hardlink"
        except OSError as exc:
            if mode == "hardlink":
                raise LinkError(exc.errno, f"cannot hard-link {source} into the dataset ({os.strerror(exc.errno or errno.EXDEV)}): use --link auto or copy") from None
    if mode == "auto" and _reflink(source, temporary):
        return "reflink"
    shutil.copyfile(source, temporary)
    return "copy"


def _reflink(source: Path, temporary: Path) -> bool:
    """A copy-on-write clone where the filesystem has them; False (nothing left behind) where not."""
    try:
        with open(source, "rb") as src, open(temporary, "wb") as dst:
            fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
        return True
    except OSError:
        temporary.unlink(missing_ok=True)
        return False
