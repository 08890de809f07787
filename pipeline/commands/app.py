"""The Typer application every command module registers on (kept apart so `pipeline.cli` and the commands
share it without an import cycle), its application options (-v, --version), and help reflowing.

Docstrings and long help strings are wrapped at ~100 columns in the source; printed as they are, their
line breaks come out as ragged lines at 80 columns. `ReflowCommand` joins each paragraph's lines so the
terminal wraps them, keeping paragraph breaks, list items and indented (example) lines.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup
from typer.models import DefaultPlaceholder

from pipeline import __version__

# A line that starts a new line even inside a paragraph: a list item.
_LIST_ITEM = re.compile(r"\s*([-*\u2022]|\d+[.)])\s")


def reflow(text: str | None) -> str | None:
    """Join the hard-wrapped lines of each paragraph; list items and indented lines keep their own line."""
    if not text or "\n" not in text:
        return text
    return "\n\n".join(_reflow_paragraph(paragraph) for paragraph in inspect.cleandoc(text).split("\n\n"))


def _reflow_paragraph(paragraph: str) -> str:
    if paragraph.startswith("\b"):  # Click's "keep as written" marker
        return paragraph
    lines: list[str] = []
    in_item = False
    for line in paragraph.split("\n"):
        indented = line[:1].isspace()
        if _LIST_ITEM.match(line):
            lines.append(line.rstrip())
            in_item = True
        elif lines and (not indented or in_item):  # a continuation: of the prose, or of a list item
            lines[-1] = f"{lines[-1]} {line.strip()}"
        else:  # the first line, or an indented example
            lines.append(line.rstrip())
    return "\n".join(lines)


class ReflowCommand(TyperCommand):
    """A command whose help, epilog and every option's help are reflowed (see `reflow`)."""

    epilog_is_lazy = False

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)
        if not self.epilog_is_lazy:  # reading a lazy epilog here would build it for every command
            self.epilog = reflow(self.epilog)
        for param in self.params:
            if getattr(param, "help", None):
                param.help = reflow(param.help)


def lazy_epilog(build: Callable[[], str]) -> type[ReflowCommand]:
    """A command class whose epilog is `build()`, made only when the help is shown: the tables epilogs
    list (methods, recipes, hint schemes) import PyTorch, which `pipe --help`, `pipe status` and Ctrl-C
    during start-up must not wait for."""

    class LazyEpilogCommand(ReflowCommand):
        epilog_is_lazy = True

        @property
        def epilog(self) -> str:
            return reflow(build())

        @epilog.setter
        def epilog(self, value: object) -> None:
            pass  # Click's constructor sets it; the property computes it

    return LazyEpilogCommand


class ReflowGroup(TyperGroup):
    """A command group (`pipe`, `pipe weights`...) whose help is reflowed."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.help = reflow(self.help)


app = typer.Typer(
    name="pipe",
    cls=ReflowGroup,
    help=(
        "Build line-art colorization datasets, end to end.\n\n"
        "A dataset is one folder (ROOT). Each stage reads the previous stage's ledger and writes its own "
        "(ROOT/<stage>.parquet, one row per input with status and reason), resumes where a killed run "
        "stopped, and never drops an input silently. `pipe run JOB.toml` runs a dataset's whole chain as one "
        "scheduled job. Start with `pipe demo`: it crawls a local fixture board, prepares, extracts line art and "
        "packs shards, trains and evaluates, end to end."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def reflow_all(typer_app: typer.Typer) -> None:
    """Give every command and group of `typer_app` (recursively) the reflowing classes, unless it has its own."""
    for command in typer_app.registered_commands:
        command.cls = _reflowing(command.cls, TyperCommand, ReflowCommand)
    for group in typer_app.registered_groups:
        group.cls = _reflowing(group.cls, TyperGroup, ReflowGroup)
        if group.typer_instance is not None:
            info = group.typer_instance.info
            info.cls = _reflowing(info.cls, TyperGroup, ReflowGroup)
            reflow_all(group.typer_instance)


def _reflowing(cls, plain: type, reflowing: type) -> type:  # noqa: ANN001
    """`reflowing` in place of Typer's default class (unset, or `plain` itself); a command's own class is kept."""
    if cls is None or cls is plain or isinstance(cls, DefaultPlaceholder):
        return reflowing
    return cls


def _version(value: bool) -> None:
    if value:
        from pipeline.console import console  # noqa: PLC0415

        console.print(f"pipe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")] = 0,
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    from rich.logging import RichHandler  # noqa: PLC0415

    from pipeline.console import console  # noqa: PLC0415

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)])
