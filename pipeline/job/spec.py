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

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import PipeError
from pipeline.stage_options import OptionRejected, is_path_option, parameters, parse, parser_of
from pipeline.stages import Stage, stage_names
from pipeline.stages import stage as stage_entry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TOP_LEVEL_KEYS = ("dataset", "seed")


def chain() -> tuple[str, ...]:
    """The stages a job can have, in chain order (a job runs those it has tables for in this order)."""
    return stage_names()


def train_stages() -> tuple[str, ...]:
    """The stages that train a run: a path value naming one means its checkpoint."""
    return tuple(name for name in stage_names() if stage_entry(name).checkpoint)


def stage_command_name(stage: str) -> str:
    return stage_entry(stage).command


@dataclass
class StageSpec:
    """One stage of a job: the command line it stands for, parsed and checked."""

    name: str  # "crawl", "train.draft", ...
    table: dict[str, Any]  # the job file's table, as written (after --set)
    argv: list[str] = field(default_factory=list)  # the command's arguments, dataset root included
    params: dict[str, Any] = field(default_factory=dict)  # every option's value, defaults included

    @property
    def entry(self) -> Stage:
        """The stage's registry entry: its command, ledger, upstream stages and job hooks."""
        return stage_entry(self.name)

    @property
    def command(self) -> str:
        return self.entry.command

    def command_line(self) -> str:
        import shlex

        return " ".join(["pipe", *self.command.split(), *(shlex.quote(part) for part in self.argv)])


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
        raise JobFileError(f"{where}: no stage tables: add at least one of " + ", ".join(f"[{s}]" for s in chain()))
    stages = [StageSpec(name, tables[name]) for name in chain() if name in tables]
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
    if stage not in chain():
        raise JobFileError(f"--set {override}: unknown stage {stage!r}; stages are: {', '.join(chain())}")
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
    grouped = {name.split(".", 1)[0] for name in chain() if "." in name}  # [train.draft]: a table in `train`
    for key, value in document.items():
        if key in TOP_LEVEL_KEYS:
            continue
        if key in grouped:
            members = [name for name in chain() if name.startswith(key + ".")]
            if not isinstance(value, dict):
                listed = ", ".join(f"[{m}]" for m in members[:-1]) + f" or [{members[-1]}]"
                raise JobFileError(f"{where}: {key}: expected tables {listed}")
            for stage, table in value.items():
                name = f"{key}.{stage}"
                if name not in chain():
                    kinds = ", ".join(m.split(".", 1)[1] for m in members)
                    raise JobFileError(f"{where}: unknown stage [{name}]; {key} stages are: {kinds}")
                if not isinstance(table, dict):
                    raise JobFileError(f"{where}: [{name}] must be a table")
                tables[name] = table
        elif key in chain():
            if not isinstance(value, dict):
                raise JobFileError(f"{where}: {key}: expected a table [{key}]")
            tables[key] = value
        else:
            known = ", ".join(list(TOP_LEVEL_KEYS) + [f"[{s}]" for s in chain()])
            raise JobFileError(f"{where}: unknown {'stage' if isinstance(value, dict) else 'key'} {key!r}; a job has: {known}")
    return tables


# --------------------------------------------------------------------------------------------- checking
def _resolve_stage(stage: StageSpec, job: JobSpec, base: Path, where: str) -> None:
    """Turn the stage's table into its command line and parsed values, or a JobFileError naming the key."""
    parser = parser_of(stage.entry)
    label = f"{where}: [{stage.name}]"
    options, arguments = parameters(parser)
    table = dict(stage.table)
    # What a chain decides for its commands: the seed, and what the stage's own hook adds.
    if job.seed is not None and "seed" in options and "seed" not in table:
        table["seed"] = job.seed
    stage.entry.hook("complete_table")(job, stage, table, label)
    argv = _argument_argv(stage, job, arguments, table, base, label)
    argument_names = {a.name for a in arguments}
    for key, value in table.items():
        if key in argument_names and key not in options:
            _check_argument_key(stage, job, key, label)
            continue
        if key in stage.entry.job_owned:
            raise JobFileError(f"{label} {key}: not a job setting: {stage.entry.job_owned[key]}")
        option = options.get(key)
        if option is None:
            raise JobFileError(f"{label} {key}: `pipe {stage.command}` has no option --{key} (see `pipe {stage.command} --help`)")
        argv += _option_argv(option, key, value, label, base, job)
    try:
        params = parse(parser, stage.command, argv)
    except OptionRejected as exc:
        raise JobFileError(f"{label} {exc.key}: {exc}") from None
    stage.entry.hook("check_params")(stage, params, label)
    from pipeline.job.values import check_values

    refused = check_values(stage.entry, stage.name, dict(params))
    if refused is not None:
        raise JobFileError(f"{label} {refused[0]}: {refused[1]}")
    stage.table = table
    stage.argv = argv
    stage.params = params


def _argument_argv(stage: StageSpec, job: JobSpec, arguments: list[Any], table: dict[str, Any], base: Path, label: str) -> list[str]:
    """The positional arguments: the dataset root from the job, the others from the table or the stage's hooks."""
    argv: list[str] = []
    for argument in arguments:
        supplied = str(job.dataset) if argument.name == "root" else stage.entry.hook("job_argument")(job, stage, argument.name)
        if supplied is not None:
            argv.append(supplied)
        elif argument.name in table:
            value = table[argument.name]
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise JobFileError(f"{label} {argument.name}: expected a string, got {value!r}")
            argv.append(_path_text(str(value), base, job, label, argument.name) if is_path_option(argument) else str(value))
        elif (default := stage.entry.hook("default_argument")(job, stage, argument.name, table, label)) is not None:
            argv.append(default)
        elif argument.required:
            raise JobFileError(f"{label} {argument.name}: missing (the {argument.name.upper()} of `pipe {stage.command}`)")
    return argv


def _check_argument_key(stage: StageSpec, job: JobSpec, key: str, label: str) -> None:
    """A table key naming an argument the job supplies itself is a mistake; one it takes is fine."""
    if key == "root":
        raise JobFileError(f"{label} root: the dataset root comes from the top-level `dataset`")
    if stage.entry.hook("job_argument")(job, stage, key) is not None:
        grouped = stage.name.split(".", 1)[0]
        tables = ", ".join(f"[{name}]" for name in chain() if name.startswith(grouped + "."))
        raise JobFileError(f"{label} {key}: the {grouped} {key} is the table's name ({tables})")


def run_name(stage: StageSpec) -> str:
    """The run folder a train stage trains (ROOT/runs/NAME): --name, or RECIPE-STAGE as `pipe train` names it."""
    return stage.params.get("name") or f"{stage.params['recipe']}-{stage.name.split('.', 1)[1]}"


def checkpoint_of(job: JobSpec, stage_name: str) -> Path:
    from manifests.layout import DatasetLayout

    stage = job.stage(stage_name)
    assert stage is not None and stage.params
    return DatasetLayout(job.dataset).run_checkpoint(run_name(stage))


def _path_text(value: str, base: Path, job: JobSpec, label: str, key: str) -> str:
    if re.fullmatch(r"train\.[A-Za-z0-9_-]+", value) and value not in train_stages() and not (base / value).exists():
        # `train.drfat`: a misspelt stage, not a file of that name (there is none)
        raise JobFileError(f"{label} {key}: {value!r} is no train stage (they are {', '.join(train_stages())}) and no file {base / value} exists")
    if value in train_stages():
        referenced = job.stage(value)
        if referenced is None or not referenced.params:
            raise JobFileError(f"{label} {key}: {value!r} names no train stage that runs before this one in the job")
        return str(checkpoint_of(job, value))
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _option_argv(option: Any, key: str, value: Any, label: str, base: Path, job: JobSpec) -> list[str]:
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
            argv += [flag, _scalar(item, option, label, key, base, job)]
        return argv
    if option.nargs > 1:
        if not isinstance(value, list) or len(value) != option.nargs:
            raise JobFileError(f"{label} {key}: expected a list of {option.nargs} values")
        return [flag, *(_scalar(v, option, label, key, base, job) for v in value)]
    if isinstance(value, list):  # a comma-separated option written as a TOML list
        return [flag, ",".join(_scalar(v, option, label, key, base, job) for v in value)]
    return [flag, _scalar(value, option, label, key, base, job)]


def _scalar(value: Any, option: Any, label: str, key: str, base: Path, job: JobSpec) -> str:
    if isinstance(value, (list, dict)) or isinstance(value, bool):
        raise JobFileError(f"{label} {key}: expected a single value, got {value!r}")
    text = str(value)
    return _path_text(text, base, job, label, key) if is_path_option(option) else text


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
