"""Errors a user can cause and fix: the CLI prints them as one line, never as a traceback.

`PipeError` is the top layer's own. The libraries raise ordinary exceptions; those that always mean
"the user can fix this" (a damaged or too-new ledger, a training setup that cannot start) are listed in
`USER_ERRORS` and printed the same way wherever they surface.
"""

from manifests.errors import LedgerError
from train.errors import TrainingError


class PipeError(Exception):
    """A bad option, a missing file, a locked dataset: the message says what and how to fix it."""


class Interrupted(PipeError):
    """Ctrl-C or SIGTERM ended a stage after it saved its work; the message says how to resume."""


USER_ERRORS: tuple[type[Exception], ...] = (PipeError, LedgerError, TrainingError)
# Operating-system refusals of a path the user gave (an output folder that is a file, no permission):
# printed as "PATH: reason".
PATH_ERRORS: tuple[type[OSError], ...] = (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)
