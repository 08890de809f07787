"""The command line as a user first meets it: Ctrl-C during start-up is one line, and every command's
help reads as prose at 80 columns (the source's hard wraps joined, paragraphs and lists kept)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import typer

from pipeline.cli import load_app, main

WIDTH = 80
_BOX = "│╭╰─┃┏┗━"
_LIST_START = re.compile(r"([-*\u2022]|\d+[.)]|\[)\s?")


def _commands() -> list[list[str]]:
    """Every command path (`prepare`, `weights fetch`, ...), groups included."""
    found: list[list[str]] = []

    def walk(command, path: list[str]) -> None:  # noqa: ANN001 - a Click command (Typer vendors its own Click)
        found.append(path)
        if getattr(command, "commands", None):  # a group
            for name, sub in command.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(load_app()), [])
    return found


def _cells(line: str) -> list[tuple[int, str]]:
    """(column, text) of each run of text in a help line, panel borders left out."""
    inner = "".join(" " if ch in _BOX else ch for ch in line)
    return [(m.start(), m.group()) for m in re.finditer(r"\S+(?: \S+)*", inner)]


def ragged_lines(help_text: str) -> list[str]:
    """Lines of prose broken short while their paragraph goes on at the same column on the next line."""
    lines = help_text.splitlines()
    ragged = []
    for line, following in zip(lines, lines[1:]):
        here, there = _cells(line), _cells(following)
        if not here or not there:
            continue
        column, text = here[-1]
        if column > 1 and not line.lstrip().startswith(_BOX):  # an indented example outside the panels
            continue
        next_column, next_text = there[-1] if len(there) == 1 else (None, "")
        room = WIDTH - 2 - column  # the width the text could have used on this line
        continues = next_column == column and not _LIST_START.match(next_text)
        # A greedy wrapper (the terminal's, Rich's) moves a word down only when it does not fit: a next
        # word that would have fit here means the line was broken by hand in the source.
        if continues and len(text) + 1 + len(next_text.split(" ")[0]) <= room:
            ragged.append(f"{line.rstrip()}\n{following.rstrip()}")
    return ragged


def test_every_command_s_help_is_reflowed_at_80_columns(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    problems = {}
    commands = _commands()
    assert {"prepare", "extract", "weights fetch", "import pairs"} <= {" ".join(path) for path in commands}
    for path in commands:
        assert main([*path, "--help"]) == 0, path
        text = capsys.readouterr().out
        assert text.strip(), path
        if ragged := ragged_lines(text):
            problems[" ".join(path) or "pipe"] = ragged
    assert problems == {}, "\n\n".join(f"pipe {name}:\n" + "\n".join(lines) for name, lines in problems.items())


def test_reflow_keeps_paragraphs_lists_and_examples():
    from pipeline.commands.app import reflow

    text = "A sentence cut\nin two.\n\nItems:\n- one\n  continued\n- two\n\n    pipe run job.toml\n    pipe status ds"
    assert reflow(text) == "A sentence cut in two.\n\nItems:\n- one continued\n- two\n\n    pipe run job.toml\n    pipe status ds"


@pytest.mark.parametrize(("command_name", "delay"), [("status", 0.3), ("train", 0.8), ("train", 1.5)])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, command_name, delay):
    """`pipe train` imports PyTorch inside the command (after start-up): a Ctrl-C landing in an
    extension's import is still the one line and exit 2, not a process killed by SIGINT."""
    (tmp_path / "data").mkdir()
    args = ["status"] if command_name == "status" else ["train", "draft"]
    command = [sys.executable, "-m", "pipeline.cli", *args, str(tmp_path / "data")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
    time.sleep(delay)
    if process.poll() is not None:
        process.communicate()
        pytest.skip(f"the command finished within {delay} s on this machine")
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err, err
    if process.returncode in (0, -signal.SIGINT) and "error: interrupted" not in err:
        # It had finished its work when the signal came (at exit: the default SIGINT ends the process).
        pytest.skip("the signal arrived after the work was done")
    assert (process.returncode, err.strip().splitlines()[-1]) == (2, "error: interrupted"), err


def test_an_interrupt_a_stage_caught_inside_an_extension_still_exits_2(tmp_path):
    """A `pipe run` job catches the SIGTERM of a `systemctl stop` and returns 2 after its one line. If the
    signal landed while an extension ran Python code from C (PyTorch's import does), an interpreter
    started as `python -m` is left set to kill itself with SIGINT at exit: seen as exit -2 from a job
    under `python -m pipeline.cli run`. `main` exits 2."""
    (tmp_path / "stage_caught_it.py").write_text(
        "import ctypes, sys\nimport pipeline.cli as cli\n"
        "def stage_that_caught_it(argv):\n"
        "    ctypes.pythonapi.PyRun_SimpleString(b'import signal; signal.raise_signal(signal.SIGTERM)')\n"
        "    return 2\n"
        "cli._run_app = stage_that_caught_it\nsys.exit(cli.main())\n"
    )
    result = subprocess.run([sys.executable, "-m", "stage_caught_it"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]


HEAVY = ("torch", "cv2", "scrapy", "ray")


def _modules_after(args: list[str]) -> set[str]:
    """The heavy libraries loaded by `pipe ARGS`, run in a fresh interpreter as a user's shell would."""
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('loaded:', ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded:"), result.stdout[-2000:]
    return set(filter(None, last.removeprefix("loaded:").strip().split(",")))


@pytest.mark.parametrize("args", [["--help"], ["extract", "--help"], ["shard", "--help"], ["train", "--help"], ["eval", "--help"]], ids=" ".join)
def test_help_imports_no_pytorch_opencv_scrapy_or_ray(args):
    """`pipe --help` took 2-3 s, 1.85 s of it importing PyTorch for the epilog tables; each command's
    own --help builds only its own table."""
    loaded = _modules_after(args)
    assert loaded <= ({"torch", "cv2"} if args[0] in ("extract", "shard", "train", "eval") else set()), loaded
    if args == ["--help"]:
        assert not loaded


def test_status_imports_no_pytorch(tmp_path):
    from tests.helpers import make_prepared_dataset

    make_prepared_dataset(tmp_path / "root", 2, size=32)
    assert _modules_after(["status", str(tmp_path / "root")]) == set()


def test_extract_help_still_lists_every_method_with_its_options(capsys, monkeypatch):
    from extractors.methods import METHODS

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["extract", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Methods and their options" in out
    for name in METHODS:
        assert f"{name}:" in out, name
