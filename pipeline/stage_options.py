"""A stage's command-line options, read from the `pipe` command that declares them (Typer's parser).

The one place the job machinery meets the CLI's parser: `pipeline/job/` asks this module for a
stage's options, parses a table's values through them and runs the command, and sees only plain
values and exceptions (`OptionRejected`, `StageAborted`), never Typer or Click objects' classes.
"""

from __future__ import annotations

import functools
from typing import Any

from pipeline.stages import Stage

EXIT_ABORTED = 130  # what Typer's parser returns for a KeyboardInterrupt it caught


class OptionRejected(Exception):
    """The command's parser refused a value: `key` names the option (its long name without dashes)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class StageAborted(Exception):
    """Ctrl-C/SIGTERM outside the stage's own session (the parser turned it into an abort)."""


@functools.cache
def _registered(module: str) -> dict[str, Any]:
    """The parsers of the commands registered once `module` is imported (Typer's own Click)."""
    import importlib

    import typer

    importlib.import_module(module)
    from pipeline.commands.app import app

    return dict(typer.main.get_command(app).commands)


def parser_of(stage: Stage) -> Any:
    """The parser of the stage's command: it checks a job's values and runs the stage. A command of a
    group (`import booru`) is its group's subcommand."""
    if stage.parser is not None:
        return stage.parser()
    group, *subcommands = stage.command.split()
    command = _registered(stage.options)[group]
    for name in subcommands:
        command = command.commands[name]
    return command


def parameters(command: Any) -> tuple[dict[str, Any], list[Any]]:
    """The command's options by long name (without dashes) and its positional arguments in order."""
    options: dict[str, Any] = {}
    arguments: list[Any] = []
    for param in command.params:
        if param.param_type_name == "argument":
            arguments.append(param)
        else:
            for opt in param.opts:
                if opt.startswith("--"):
                    options[opt[2:]] = param
    return options, arguments


def is_path_option(option: Any) -> bool:
    """Options whose values are files or folders (relative values start from the job file's folder)."""
    from pathlib import Path

    descriptor = getattr(option, "type_descriptor", None)
    if descriptor is not None:  # typer >= 0.28 keeps the annotation
        annotation = descriptor.annotation
        return annotation is Path or Path in getattr(annotation, "__args__", ())
    # Older typer: Click's path parameter type, whose `name` is "path" in every Click release (its
    # class is Typer's own subclass in some).
    return getattr(getattr(option, "type", None), "name", None) == "path"


def parse(command: Any, name: str, argv: list[str]) -> dict[str, Any]:
    """Every option's value (defaults included) as the command would see them; OptionRejected if refused."""
    try:
        return dict(command.make_context(name, list(argv)).params)
    except Exception as exc:  # the parser's usage errors: a wrong type, a value out of range
        if not hasattr(exc, "format_message"):
            raise
        raise OptionRejected(_failing_key(exc, parameters(command)[0]), exc.format_message()) from None


def invoke(stage: Stage, argv: list[str]) -> str:
    """Run the stage's command as `pipe COMMAND ARGV...` would, in this process: "ok" or "failed: <why>"."""
    import typer

    try:
        result = parser_of(stage).main(args=argv, prog_name=f"pipe {stage.command}", standalone_mode=False)
    except (KeyboardInterrupt, typer.Abort):
        raise StageAborted from None
    if result == EXIT_ABORTED:
        raise StageAborted
    if isinstance(result, int) and result != 0:
        return f"failed: exit code {result}"
    return "ok"


def _failing_key(error: Exception, options: dict[str, Any]) -> str:
    param = getattr(error, "param", None)
    if param is not None:
        for key, option in options.items():
            if option is param:
                return key
        return param.name or "?"
    return "options"
