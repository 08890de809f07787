"""Errors a user can cause and fix: the CLI prints them as one line, never as a traceback."""


class PipeError(Exception):
    """A bad option, a missing file, a locked dataset: the message says what and how to fix it."""
