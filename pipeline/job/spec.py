"""A job file: one dataset and the chain of `pipe` commands that build it, read and checked as a whole.

```toml
dataset = "data/portraits"     # the dataset root (relative paths: from the job file's folder)
seed = 0                       # given to every command that has --seed, unless its table sets one
[crawl]
site = "danbooru"
tags = "1girl portrait"
[train.draft]
recipe = "xu2020"
steps = 2000                   # trained on for this many steps each time the shards grow
```

A stage table's keys are its command's long option names without the dashes (`min-side = 512`), plus
its positional arguments by the names `--help` shows (`site`, `source`); the dataset-root argument of
every command is the top-level `dataset`. The values are parsed by the command's own option parser, so
the job accepts exactly what the command line accepts, and a mistake names the table and the key
before anything runs.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipeError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# Chain order; a job runs the stages it has tables for in this order.
STAGES = ("crawl", "prepare", "extract", "shard", "train.ldm", "train.draft", "train.refine", "eval")
TRAIN_STAGES = tuple(s for s in STAGES if s.startswith("train."))
TOP_LEVEL_KEYS = ("dataset", "seed")

# Keys the job itself decides: what a scheduled run does with them is the job's business.
JOB_OWNED = {
    "train": {
        "resume": "the job continues a run from its last checkpoint by itself",
        "overwrite": "a job never deletes a run; start it over by hand with `pipe train ... --overwrite`",
    },
    "eval": {
        "compare": "`pipe eval --compare` prints two reports; it is not a stage",
        "out": "each job run writes a new report under ROOT/reports/ and keeps the old ones",
    },
    "shard": {
        "verify": "`pipe shard --verify` checks shards; run it by hand",
        "contact-sheet": "`pipe shard --contact-sheet` draws a picture; run it by hand",
    },
}


def stage_command_name(stage: str) -> str:
    return stage.split(".")[0]


@dataclass
class StageSpec:
    """One stage of a job: the command line it stands for, parsed and checked."""

    name: str  # "crawl", "train.draft", ...
    table: dict[str, Any]  # the job file's table, as written (after --set)
    argv: list[str] = field(default_factory=list)  # the command's arguments, dataset root included
    params: dict[str, Any] = field(default_factory=dict)  # every option's value, defaults included

    @property
    def command(self) -> str:
        return stage_command_name(self.name)

    def command_line(self) -> str:
        import shlex

        return "pipe " + " ".join(shlex.quote(part) for part in [self.command, *self.argv])


@dataclass
class JobSpec:
    path: Path  # the job file ("<built-in>" for the demo's)
    dataset: Path
    seed: int | None
    stages: list[StageSpec]
    text: str  # the resolved job, as TOML

    def stage(self, name: str) -> StageSpec | None:
        return next((s for s in self.stages if s.name == name), None)


class JobFileError(PipeError):
    """A job file that cannot run: the message names the file, the table and the key."""


# --------------------------------------------------------------------------------------------- reading
def read_job(path: Path, overrides: list[str] = ()) -> JobSpec:
    """Parse and check a job file (with `--set stage.key=value` overrides) against every command it names."""
    if not path.is_file():
        raise JobFileError(f"{path}: no such job file")
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise JobFileError(f"{path}: not a valid TOML file: {exc}") from None
    return check_job(document, path, overrides)


def check_job(document: dict[str, Any], path: Path, overrides: list[str] = (), base: Path | None = None) -> JobSpec:
    """`base`: the folder relative paths start from (default: the job file's)."""
    where = str(path)
    base = (base or path.parent).resolve()
    for override in overrides:
        apply_override(document, override, where)
    tables = _stage_tables(document, where)
    dataset_value = document.get("dataset")
    if dataset_value is None:
        raise JobFileError(f"{where}: dataset: missing (the dataset root, e.g. dataset = \"data/portraits\")")
    if not isinstance(dataset_value, str) or not dataset_value:
        raise JobFileError(f"{where}: dataset: expected a path string, got {dataset_value!r}")
    seed = document.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise JobFileError(f"{where}: seed: expected an integer, got {seed!r}")
    dataset = (base / dataset_value).resolve()
    if not tables:
        raise JobFileError(f"{where}: no stage tables: add at least one of " + ", ".join(f"[{s}]" for s in STAGES))
    stages = [StageSpec(name, tables[name]) for name in STAGES if name in tables]
    job = JobSpec(path=path, dataset=dataset, seed=seed, stages=stages, text="")
    for stage in stages:
        _resolve_stage(stage, job, base, where)
    job.text = job_toml(job)
    return job


def apply_override(document: dict[str, Any], override: str, where: str) -> None:
    """`--set train.draft.steps=500`: the value is read as TOML (500, true, "text", [1, 2]), or as a bare string."""
    target, sep, raw = override.partition("=")
    if not sep or "." not in target:
        raise JobFileError(f"--set {override}: expected STAGE.KEY=VALUE, e.g. --set train.draft.steps=500")
    stage, key = target.rsplit(".", 1)
    if stage not in STAGES:
        raise JobFileError(f"--set {override}: unknown stage {stage!r}; stages are: {', '.join(STAGES)}")
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw
    table = document
    for part in stage.split("."):
        table = table.get(part) if isinstance(table, dict) else None
    if not isinstance(table, dict):
        raise JobFileError(f"--set {override}: {where} has no [{stage}] table (a job runs only the stages it has tables for)")
    table[key] = value


def _stage_tables(document: dict[str, Any], where: str) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for key, value in document.items():
        if key in TOP_LEVEL_KEYS:
            continue
        if key == "train":
            if not isinstance(value, dict):
                raise JobFileError(f"{where}: train: expected tables [train.draft], [train.refine] or [train.ldm]")
            for stage, table in value.items():
                name = f"train.{stage}"
                if name not in STAGES:
                    raise JobFileError(f"{where}: unknown stage [{name}]; train stages are: draft, refine, ldm")
                if not isinstance(table, dict):
                    raise JobFileError(f"{where}: [{name}] must be a table")
                tables[name] = table
        elif key in STAGES:
            if not isinstance(value, dict):
                raise JobFileError(f"{where}: {key}: expected a table [{key}]")
            tables[key] = value
        else:
            known = ", ".join(list(TOP_LEVEL_KEYS) + [f"[{s}]" for s in STAGES])
            raise JobFileError(f"{where}: unknown {'stage' if isinstance(value, dict) else 'key'} {key!r}; a job has: {known}")
    return tables


# --------------------------------------------------------------------------------------------- checking
@functools.cache
def _commands() -> dict[str, Any]:
    """Every `pipe` command's parser (Typer's own Click), built once per process."""
    import typer

    # The stage commands a job runs (colorize too: the same first modules, in the same order, as
    # `pipe --help` registers), without pipeline.cli, whose `pipe run` command imports this module.
    from pipeline.commands import prepare, import_pairs, crawl, extract, shard, train, colorize, eval  # noqa: F401, I001
    from pipeline.commands.app import app

    return dict(typer.main.get_command(app).commands)


def parser_of(name: str) -> Any:
    """The parser of `pipe NAME`: it checks a job's values (make_context) and runs the stage (main)."""
    return _commands()[name]


def _resolve_stage(stage: StageSpec, job: JobSpec, base: Path, where: str) -> None:
    parser = parser_of(stage.command)
    label = f"{where}: [{stage.name}]"
    owned = JOB_OWNED.get(stage.command, {})
    options, arguments = _parameters(parser)
    table = dict(stage.table)
    # What a chain decides for its commands: the seed, and which checkpoints eval scores.
    if job.seed is not None and "seed" in options and "seed" not in table:
        table["seed"] = job.seed
    if stage.command == "eval":
        for key in ("draft", "refine"):
            if key not in table and job.stage(f"train.{key}") is not None:
                table[key] = f"train.{key}"
        if "draft" not in table:
            raise JobFileError(f"{label} draft: missing: the job trains no draft stage, so name a checkpoint (draft = \"runs/NAME/checkpoints/last.pt\")")
    # The positional arguments: the dataset root and the train stage come from the job itself.
    argv: list[str] = []
    argument_names = {a.name for a in arguments}
    for argument in arguments:
        if argument.name == "root":
            argv.append(str(job.dataset))
        elif argument.name == "stage" and stage.command == "train":
            argv.append(stage.name.split(".", 1)[1])
        elif argument.name in table:
            value = table[argument.name]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise JobFileError(f"{label} {argument.name}: expected a string, got {value!r}")
            argv.append(_path_text(str(value), base, job, label, argument.name) if argument.name == "source" else str(value))
        elif stage.name == "prepare" and argument.name == "source":
            if job.stage("crawl") is None and not (job.dataset / "raw.parquet").is_file():
                raise JobFileError(f"{label} source: missing: the job has no [crawl] table, so give a folder of images or a crawl ledger")
            table["source"] = str(job.dataset / "raw.parquet")
            argv.append(table["source"])
        elif argument.required:
            raise JobFileError(f"{label} {argument.name}: missing (the {argument.name.upper()} of `pipe {stage.command}`)")
    for key, value in table.items():
        if key in argument_names and key not in options:
            if key == "root":
                raise JobFileError(f"{label} root: the dataset root comes from the top-level `dataset`")
            if key == "stage":
                raise JobFileError(f"{label} stage: the train stage is the table's name ([train.draft], [train.refine], [train.ldm])")
            continue
        if key in owned:
            raise JobFileError(f"{label} {key}: not a job setting: {owned[key]}")
        option = options.get(key)
        if option is None:
            raise JobFileError(f"{label} {key}: `pipe {stage.command}` has no option --{key} (see `pipe {stage.command} --help`)")
        argv += _option_argv(option, key, value, label, base, job, is_path=option.name in path_parameters(stage.command))
    try:
        context = parser.make_context(stage.command, list(argv))
    except _usage_error_type(parser) as exc:  # the parser's usage errors: a wrong type, a value out of range
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise JobFileError(f"{label} {_failing_key(exc, options)}: {message}") from None
    if stage.command == "train" and context.params.get("steps") is None:
        raise JobFileError(f"{label} steps: missing: a job trains this many steps each time the train shards grow (e.g. steps = 2000)")
    from pipeline.job.values import check_values

    refused = check_values(stage.command, stage.name, dict(context.params))
    if refused is not None:
        raise JobFileError(f"{label} {refused[0]}: {refused[1]}")
    stage.table = table
    stage.argv = argv
    stage.params = dict(context.params)


def run_name(stage: StageSpec) -> str:
    """The run folder a train stage trains (ROOT/runs/NAME): --name, or RECIPE-STAGE as `pipe train` names it."""
    return stage.params.get("name") or f"{stage.params['recipe']}-{stage.name.split('.', 1)[1]}"


def checkpoint_of(job: JobSpec, stage_name: str) -> Path:
    from manifests.layout import DatasetLayout

    stage = job.stage(stage_name)
    assert stage is not None and stage.params
    return DatasetLayout(job.dataset).run_checkpoint(run_name(stage))


def _failing_key(error: Exception, options: dict[str, Any]) -> str:
    param = getattr(error, "param", None)
    if param is not None:
        for key, option in options.items():
            if option is param:
                return key
        return param.name or "?"
    return "options"


def _usage_error_type(command: Any) -> type[Exception]:
    """The ClickException class of the Click that `command` is built on: Typer vendors its own Click
    from 0.28 (typer._click), before that it uses the installed click package."""
    import importlib

    for cls in type(command).__mro__:
        if cls.__name__ == "Command" and cls.__module__.endswith(".core"):
            return importlib.import_module(cls.__module__.removesuffix(".core") + ".exceptions").ClickException
    raise TypeError(f"{type(command).__name__} is not a Click command")


def _parameters(command: Any) -> tuple[dict[str, Any], list[Any]]:
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


@functools.cache
def path_parameters(name: str) -> frozenset[str]:
    """The parameters of `pipe NAME` whose values are files or folders (annotated `Path`, optional or
    not): relative values start from the job file's folder, and a value naming one of the job's train
    stages (drafts-from = "train.draft") means its checkpoint. Read from the command function's own
    annotations: Typer's records of them differ between its releases."""
    function = inspect.unwrap(parser_of(name).callback)
    hints = typing.get_type_hints(function)
    return frozenset(key for key, hint in hints.items() if hint is Path or Path in typing.get_args(hint))


def _path_text(value: str, base: Path, job: JobSpec, label: str, key: str) -> str:
    if re.fullmatch(r"train\.[A-Za-z0-9_-]+", value) and value not in TRAIN_STAGES and not (base / value).exists():
        # `train.drfat`: a misspelt stage, not a file of that name (there is none)
        raise JobFileError(f"{label} {key}: {value!r} is no train stage (they are {', '.join(TRAIN_STAGES)}) and no file {base / value} exists")
    if value in TRAIN_STAGES:
        referenced = job.stage(value)
        if referenced is None or not referenced.params:
            raise JobFileError(f"{label} {key}: {value!r} names no train stage that runs before this one in the job")
        return str(checkpoint_of(job, value))
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _option_argv(option: Any, key: str, value: Any, label: str, base: Path, job: JobSpec, is_path: bool) -> list[str]:
    flag = f"--{key}"
    if option.is_flag and not option.count:
        if not isinstance(value, bool):
            raise JobFileError(f"{label} {key}: expected true or false, got {value!r}")
        if value:
            return [flag]
        if option.secondary_opts:
            return [option.secondary_opts[0]]
        return []
    if isinstance(value, bool):
        raise JobFileError(f"{label} {key}: expected a value for --{key}, got {value!r}")
    if isinstance(value, dict):
        raise JobFileError(f"{label} {key}: expected a value for --{key}, got a table")
    if option.multiple:
        values = value if isinstance(value, list) else [value]
        argv: list[str] = []
        for item in values:
            argv += [flag, _scalar(item, label, key, base, job, is_path)]
        return argv
    if option.nargs > 1:
        if not isinstance(value, list) or len(value) != option.nargs:
            raise JobFileError(f"{label} {key}: expected a list of {option.nargs} values")
        return [flag, *(_scalar(v, label, key, base, job, is_path) for v in value)]
    if isinstance(value, list):  # a comma-separated option written as a TOML list
        return [flag, ",".join(_scalar(v, label, key, base, job, is_path) for v in value)]
    return [flag, _scalar(value, label, key, base, job, is_path)]


def _scalar(value: Any, label: str, key: str, base: Path, job: JobSpec, is_path: bool) -> str:
    if isinstance(value, (list, dict)) or isinstance(value, bool):
        raise JobFileError(f"{label} {key}: expected a single value, got {value!r}")
    text = str(value)
    return _path_text(text, base, job, label, key) if is_path else text


# --------------------------------------------------------------------------------------------- writing
def job_toml(job: JobSpec) -> str:
    """The job as it will run: absolute dataset, every stage's table after --set (for ROOT/jobs/<time>/job.toml)."""
    lines = [f"dataset = {_toml_value(str(job.dataset))}"]
    if job.seed is not None:
        lines.append(f"seed = {job.seed}")
    for stage in job.stages:
        lines += ["", f"[{stage.name}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in stage.table.items()]
        lines.append(f"# pipe command: {stage.command_line()}")
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("-", "").replace("_", "").isalnum() else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    import json

    return json.dumps(str(value))  # a JSON string is a valid TOML basic string
