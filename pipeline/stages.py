"""The chain, declared once: every stage `pipe run` can schedule, in chain order, with what it needs.

A stage is its name (the job table: `crawl`, `train.draft`), the `pipe` command it runs, the ledger it
keeps (None: a training run or a report), the stages whose outputs it reads, the keys a job decides
for it, where its command's options are declared, and the module of its job hooks (how it completes
its table, plans what is pending for `pipe run --dry-run`, prepares and records a scheduled run, and
says what it did). The job spec, the job runner, the dry run, `pipe status` and the session's
downstream warnings all walk this list, so a new stage is one `Stage(...)` here plus its own modules.

Everything is named by module path and imported when used: importing the registry imports no torch,
no Typer and no stage code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable

_TRAIN_OWNED = {
    "resume": "the job continues a run from its last checkpoint by itself",
    "overwrite": "a job never deletes a run; start it over by hand with `pipe train ... --overwrite`",
}


@dataclass(frozen=True)
class Stage:
    """One stage of the chain."""

    name: str  # the job table: "crawl", "train.draft"
    command: str  # the `pipe` command it runs
    ledger: str | None  # the ledger it keeps (manifests.schema stage name), or None
    upstream: tuple[str, ...]  # the stages whose failure leaves nothing for it to do
    options: str  # "module" declaring `pipe COMMAND` (imported only to parse a job's table)
    hooks: str = "pipeline.stage_jobs.common"  # module of its job hooks (missing ones: the common defaults)
    job_owned: dict[str, str] = field(default_factory=dict)  # keys a job decides: why each is refused
    parser: Callable[[], Any] | None = None  # its options' parser, when not `options`'s registered command
    schema: Callable[[], Any] | None = None  # its ledger's schema, when not one of manifests.schema's
    checkpoint: bool = False  # it trains a run: its name as a path value (drafts-from = "train.draft") means the run's checkpoint
    shares_ledger: bool = False  # it adds rows to another stage's ledger (import: the crawl's raw.parquet)

    def hook(self, name: str) -> Callable[..., Any]:
        """The stage's job hook `name`, or the common one when its module has none."""
        own = _module(self.hooks)
        return getattr(own, name, None) or getattr(_module("pipeline.stage_jobs.common"), name)

    def ledger_schema(self) -> Any:
        if self.schema is not None:
            return self.schema()
        from manifests.schema import by_stage

        return by_stage(self.ledger)


def _module(path: str) -> ModuleType:
    return importlib.import_module(path)


def _train(kind: str, upstream: tuple[str, ...]) -> Stage:
    return Stage(f"train.{kind}", "train", None, upstream, "pipeline.commands.train", "pipeline.stage_jobs.train", _TRAIN_OWNED, checkpoint=True)


_BUILT_IN: tuple[Stage, ...] = (
    # A board dump first: the crawl that follows skips the posts it recorded and downloads only newer ones.
    Stage("import", "import booru", "raw", (), "pipeline.commands.import_booru", "pipeline.stage_jobs.import_booru", shares_ledger=True),
    Stage("crawl", "crawl", "raw", (), "pipeline.commands.crawl", "pipeline.stage_jobs.crawl"),
    Stage("prepare", "prepare", "prepared", ("import", "crawl"), "pipeline.commands.prepare", "pipeline.stage_jobs.prepare"),
    Stage("extract", "extract", "lines", ("prepare",), "pipeline.commands.extract", "pipeline.stage_jobs.extract"),
    Stage(
        "shard", "shard", "shards", ("prepare", "extract"), "pipeline.commands.shard", "pipeline.stage_jobs.shard",
        {
            "verify": "`pipe shard --verify` checks shards; run it by hand",
            "contact-sheet": "`pipe shard --contact-sheet` draws a picture; run it by hand",
        },
    ),
    _train("ldm", ("shard",)),
    _train("draft", ("shard", "train.ldm")),
    _train("refine", ("shard", "train.draft")),
    Stage(
        "eval", "eval", None, ("shard", "train.ldm", "train.draft", "train.refine"), "pipeline.commands.eval", "pipeline.stage_jobs.eval",
        {
            "compare": "`pipe eval --compare` prints two reports; it is not a stage",
            "out": "each job run writes a new report under ROOT/reports/ and keeps the old ones",
        },
    ),
)

_REGISTRY: list[Stage] = list(_BUILT_IN)


def stages() -> tuple[Stage, ...]:
    """Every stage, in chain order."""
    return tuple(_REGISTRY)


def stage_names() -> tuple[str, ...]:
    return tuple(stage.name for stage in _REGISTRY)


def stage(name: str) -> Stage:
    for entry in _REGISTRY:
        if entry.name == name:
            return entry
    raise KeyError(name)


def ledger_stages() -> tuple[Stage, ...]:
    """The stages that keep a ledger, in chain order: each ledger once, by the stage that owns it."""
    return tuple(entry for entry in _REGISTRY if entry.ledger and not entry.shares_ledger)


def command_of_ledger(ledger: str) -> str | None:
    """The command that writes a ledger (for messages about its outputs)."""
    return next((entry.command for entry in ledger_stages() if entry.ledger == ledger), None)


def register(new: Stage, after: str | None = None) -> Callable[[], None]:
    """Add a stage (after `after`, else at the end of the chain); returns the function that removes it."""
    if new.name in stage_names():
        raise ValueError(f"a stage {new.name!r} is already registered")
    position = stage_names().index(after) + 1 if after is not None else len(_REGISTRY)
    _REGISTRY.insert(position, new)
    return lambda: _REGISTRY.remove(new)
