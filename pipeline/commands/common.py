"""Option types, help panels and helpers shared by several commands."""

from __future__ import annotations

import logging
from typing import Annotated, Optional

import typer

from pipeline.errors import PipeError
from pipeline.executors import EXECUTORS

RUN_PANEL = "Running"
DEVICE_PANEL = "Device"

Workers = Annotated[
    int,
    typer.Option(
        "--workers", "-j", min=0, help="Worker processes (0: run in this process, for debugging).", rich_help_panel=RUN_PANEL
    ),
]

ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        help="Where units of work run: local (this machine: --workers processes) or ray (Ray tasks; "
        "pip install -e \".\\[ray]\"; the dataset root must be a path every node sees).",
        rich_help_panel=RUN_PANEL,
    ),
]
RayAddress = Annotated[
    Optional[str],
    typer.Option(
        "--ray-address",
        help="With --executor ray: a running cluster to join (auto, or an address). (default: start a local Ray "
        "runtime with --workers CPUs for this run)",
        show_default=False,
        rich_help_panel=RUN_PANEL,
    ),
]


def executor_choice(executor: str, ray_address: str | None) -> str:
    """Check --executor (and that --ray-address goes with ray) before any work starts."""
    if executor not in EXECUTORS:
        raise PipeError(f"--executor must be one of: {', '.join(EXECUTORS)} (got {executor!r})")
    if ray_address and executor != "ray":
        raise PipeError("--ray-address goes with --executor ray")
    if executor == "ray":
        from pipeline.ray_executor import connect, import_ray  # noqa: PLC0415

        import_ray()  # one line saying how to install it, before anything is written
        if ray_address:
            connect(ray_address, 0)  # a cluster that is not there: one line, before anything is written
    return executor


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

