"""Option types, help panels and helpers shared by several commands."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from pipeline.errors import PipeError

RUN_PANEL = "Running"
DEVICE_PANEL = "Device"

Workers = Annotated[
    int,
    typer.Option(
        "--workers", "-j", min=0, help="Worker processes (0: run in this process, for debugging).", rich_help_panel=RUN_PANEL
    ),
]


def verbosity() -> int:
    """0, 1 or 2 for no -v, -v and -vv (the root logger level `_main` set), for child processes."""
    level = logging.getLogger().getEffectiveLevel()
    return 2 if level <= logging.DEBUG else 1 if level <= logging.INFO else 0


def choice(enum_type, value: str, option: str):
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(member.value for member in enum_type)
        raise PipeError(f"{option} must be one of: {allowed} (got {value!r})") from None

