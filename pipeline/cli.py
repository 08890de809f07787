"""The `pipe` command line: one Typer command per stage, thin shells over the stage modules.

The commands live in pipeline.commands (one module per command or group; `pipeline.commands.app` holds
the application and its options). This module is the console-script entry point `main`: it imports
nothing but the standard library before `main` runs, so that Ctrl-C at any moment of start-up (while
PyTorch, OpenCV, pyarrow load) is the same one line as Ctrl-C during a run. `app`, every command
registered, is loaded on first use.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Iterator

__all__ = ["app", "load_app", "main"]  # noqa: F822 - `app` comes from __getattr__, loaded on first use

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

_app = None
_interrupt_seen = False  # a Ctrl-C or SIGTERM reached this process (see `main`)


def load_app():  # noqa: ANN201 - typer.Typer, imported lazily
    """The Typer application with every command registered (imported on the first call)."""
    global _app
    if _app is None:
        # Importing a command module registers its command(s), in the order of `pipe --help`.
        from pipeline.commands import prepare, import_pairs, crawl, extract, shard, train, colorize, eval, fid, weights, serve, run, status, verify, demo  # noqa: F401, I001
        from pipeline.commands.app import app, reflow_all

        reflow_all(app)
        _app = app
    return _app


def __getattr__(name: str):  # noqa: ANN202 - `from pipeline.cli import app` keeps working
    if name == "app":
        return load_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a batch scheduler's stop, `systemctl stop`, `kill`) ends a run as Ctrl-C does: the
    stage saves what it finished (training writes a checkpoint) and exits with one line."""
    _on_interrupt(signum, frame)


def _on_interrupt(signum: int, frame: object) -> None:
    """Ctrl-C (and SIGTERM through `_terminate`): remembered for `main`, then raised as usual."""
    global _interrupt_seen
    _interrupt_seen = True
    raise KeyboardInterrupt


def light_worker_start() -> None:
    """Spawned worker processes re-run the parent's `__main__`; under the `pipe` console script (a file
    with no module spec) that is this whole CLI. Name `pipeline.spawned`, an empty module, as the main
    module's spec instead, so workers start without importing PyTorch (`python -m ...` and pytest set a
    spec of their own, which is kept)."""
    main_module = sys.modules.get("__main__")
    if main_module is not None and getattr(main_module, "__spec__", None) is None and getattr(main_module, "__file__", None):
        main_module.__spec__ = importlib.util.find_spec("pipeline.spawned")


def _interrupted(exc: BaseException | None) -> bool:
    """Whether `exc` is, or was raised while handling, a KeyboardInterrupt (Typer turns one into exit 130)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _say(line: str) -> None:
    """One error line on stderr, a second Ctrl-C ignored while it is written."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
    try:
        print(f"error: {line}", file=sys.stderr, flush=True)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGINT, previous)


def _exit_now(code: int) -> None:
    """End the process with `code` at once. A Ctrl-C that landed inside an extension module's import
    (pyarrow, numpy: a command's own imports, after start-up) leaves the interpreter set to kill itself
    with SIGINT at exit, which would replace the exit code after the one line was printed."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; also callable from tests with an argument list."""
    try:
        code = _run(argv)
    except KeyboardInterrupt:  # start-up (imports), or outside a stage session
        _say("interrupted")
        if argv is None:  # the process itself (console script, `python -m`), not a test's call
            _exit_now(2)
        return 2
    except OSError as error:
        if error.errno not in DISK_FULL_ERRNOS:
            raise
        # A full disk outside a stage session's own handling (a checkpoint, a crawl's download).
        from pipeline.errors import disk_full_message  # noqa: PLC0415

        _say(disk_full_message(error))
        return 2
    if argv is None and _interrupt_seen:
        # A stage (a `pipe run` job's, say) caught the interrupt and saved its work, but the Ctrl-C may
        # have landed in PyTorch's import, which leaves the interpreter set to die by SIGINT at exit.
        _exit_now(code)
    return code


def _run(argv: list[str] | None) -> int:
    light_worker_start()
    checksummed = sys.modules.get("manifests.checksummed")
    if checksummed is not None:  # an earlier command of this process (a test's) verified files: verify again
        checksummed.forget_verified_files()
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    previous_int = signal.signal(signal.SIGINT, _on_interrupt) if in_main_thread else None
    try:
        return _run_app(argv)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int if previous_int is not None else signal.default_int_handler)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then raise it as KeyboardInterrupt.

    Start-up imports PyTorch and OpenCV: a KeyboardInterrupt raised inside an extension module's
    initialisation aborts the process from C++ (pybind11: "terminate called after throwing") or leaves
    the interpreter flagged to kill itself with SIGINT at exit, whatever `main` then prints."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        _on_interrupt(received[0], None)


def _run_app(argv: list[str] | None) -> int:
    with _interrupts_held():
        from rich.markup import escape  # noqa: PLC0415

        from pipeline.console import console  # noqa: PLC0415
        from pipeline.errors import PATH_ERRORS, USER_ERRORS, path_error_message  # noqa: PLC0415

        app = load_app()
    try:
        app(args=argv, prog_name="pipe")
    except SystemExit as exit_:
        if _interrupted(exit_):
            raise KeyboardInterrupt from None
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except USER_ERRORS as error:
        console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)  # one line, whatever the width: greppable in logs
        return 2
    except PATH_ERRORS as error:  # an output path that is a file, a folder without write permission
        console.print(f"[red]error:[/] {escape(path_error_message(error))}", soft_wrap=True)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
