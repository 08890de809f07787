"""Errors a user can cause and fix: the CLI prints them as one line, never as a traceback.

`PipeError` is the top layer's own. The libraries raise ordinary exceptions; those that always mean
"the user can fix this" (a damaged or too-new ledger, a training setup that cannot start) are listed in
`USER_ERRORS` and printed the same way wherever they surface.

A full disk is an `OSError` (errno ENOSPC, or EDQUOT for a quota) wherever it happens: it propagates
unchanged (worker processes re-raise it instead of recording a failed sample), and the stage session
turns it into `DiskFull`, whose message says which file and how many rows were saved.
"""

from __future__ import annotations

import errno
from pathlib import Path

from manifests.errors import LedgerError
from train.errors import TrainingError

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
RERUN_HINT = "free space and run the same command again"


class PipeError(Exception):
    """A bad option, a missing file, a locked dataset: the message says what and how to fix it."""


class Interrupted(PipeError):
    """Ctrl-C or SIGTERM ended a stage after it saved its work; the message says how to resume."""


class DiskFull(PipeError):
    """The disk (or quota) filled up during a stage; what was saved is saved, the rest is redone on rerun."""


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` is the operating system's "no space left on device" (or "disk quota exceeded")."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def disk_full_message(exc: OSError, rows_saved: int | None = None, fallback_path: object = None) -> str:
    """`no space left on device writing PATH[: N rows saved]; free space and run the same command again`."""
    path = exc.filename if exc.filename is not None else fallback_path
    where = f" writing {path}" if path is not None else ""
    saved = f": {rows_saved} rows saved" if rows_saved is not None else ""
    return f"no space left on device{where}{saved}; {RERUN_HINT}"


def file_in_the_way(path: object) -> Path | None:
    """The file that stands where a folder is needed on the way to `path` (itself or a parent), if any."""
    if path is None:
        return None
    for candidate in (Path(str(path)), *Path(str(path)).parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def path_error_message(error: OSError) -> str:
    """An operating system's refusal of a path the user gave, as `PATH is a file, not a folder` when that is
    the cause (mkdir's "File exists", "Not a directory"), else `PATH: reason`."""
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        in_the_way = file_in_the_way(error.filename)
        if in_the_way is not None:
            return f"{in_the_way} is a file, not a folder"
    return f"{error.filename}: {error.strerror}"


USER_ERRORS: tuple[type[Exception], ...] = (PipeError, LedgerError, TrainingError)
# Operating-system refusals of a path the user gave (an output folder that is a file, no permission):
# printed as "PATH: reason".
PATH_ERRORS: tuple[type[OSError], ...] = (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
