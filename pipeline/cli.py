"""The `pipe` command line: one Typer command per stage, thin shells over the stage modules.

The commands live in pipeline.commands (one module per command or group); this module holds the
application's options (-v, --version) and the console-script entry point `main`.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys
import threading
from typing import Annotated, Optional

import typer
from rich.logging import RichHandler
from rich.markup import escape

from pipeline import __version__
from pipeline.commands.app import app
from pipeline.console import console
from pipeline.errors import PATH_ERRORS, USER_ERRORS

# Importing a command module registers its command(s) on `app`: keep this order, the order of `pipe --help`.
# isort: off
import pipeline.commands.prepare  # noqa: F401
import pipeline.commands.import_pairs  # noqa: F401
import pipeline.commands.crawl  # noqa: F401
import pipeline.commands.extract  # noqa: F401
import pipeline.commands.shard  # noqa: F401
import pipeline.commands.train  # noqa: F401
import pipeline.commands.colorize  # noqa: F401
import pipeline.commands.eval  # noqa: F401
import pipeline.commands.fid  # noqa: F401
import pipeline.commands.weights  # noqa: F401
import pipeline.commands.serve  # noqa: F401
import pipeline.commands.run  # noqa: F401
import pipeline.commands.status  # noqa: F401
import pipeline.commands.verify  # noqa: F401
import pipeline.commands.demo  # noqa: F401
# isort: on

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        console.print(f"pipe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a batch scheduler's stop, `systemctl stop`, `kill`) ends a run as Ctrl-C does: the
    stage saves what it finished (training writes a checkpoint) and exits with one line."""
    raise KeyboardInterrupt


def light_worker_start() -> None:
    """Spawned worker processes re-run the parent's `__main__`; under the `pipe` console script (a file
    with no module spec) that is this whole CLI. Name `pipeline.spawned`, an empty module, as the main
    module's spec instead, so workers start without importing PyTorch (`python -m ...` and pytest set a
    spec of their own, which is kept)."""
    main_module = sys.modules.get("__main__")
    if main_module is not None and getattr(main_module, "__spec__", None) is None and getattr(main_module, "__file__", None):
        main_module.__spec__ = importlib.util.find_spec("pipeline.spawned")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; also callable from tests with an argument list."""
    light_worker_start()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    try:
        app(args=argv, prog_name="pipe")
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except USER_ERRORS as error:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)  # one line, whatever the width: greppable in logs
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside a stage session (before it starts, after it finished)
        console.print("[red]error:[/] interrupted", soft_wrap=True)
        return 2
    except PATH_ERRORS as error:  # an output path that is a file, a folder without write permission
        console.print(f"[red]error:[/] {escape(str(error.filename))}: {error.strerror}", soft_wrap=True)
        return 2
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0

if __name__ == "__main__":
    sys.exit(main())
