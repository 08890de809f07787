"""A job's option values checked before anything runs, by the parsers the commands themselves use.

Click checks an option's type (`--shard-samples many`); what a value means (`hints = "none,cfdi"`, a
recipe that does not exist, a schedule the recipe cannot take) the command checks only once it runs,
which in a job can be hours of earlier stages later. So `pipe run` puts every stage's parsed values
through the same library functions the command calls, and a mistake is one line naming the table and
the key before the first stage starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pipeline.errors import PipeError

Check = Callable[[dict[str, Any]], None]


def _eval_checks(params: dict[str, Any]) -> list[tuple[str, Callable[[], object]]]:
    from pipeline.eval.hints import parse_settings
    from pipeline.eval.lines import parse_line_sources

    return [("hints", lambda: parse_settings(params["hints"])), ("lines", lambda: parse_line_sources(params["lines"]))]


def _shard_checks(params: dict[str, Any]) -> list[tuple[str, Callable[[], object]]]:
    from pipeline.shard.cli_support import parse_jpeg_members
    from synth.artifacts import parse_artifact_names
    from synth.hints import parse_hint_names
    from synth.lines import parse_line_weights

    return [
        ("hints", lambda: parse_hint_names(params["hints"])),
        ("artifacts", lambda: parse_artifact_names(params["artifacts"])),
        ("lines", lambda: params.get("lines") is None or parse_line_weights(params["lines"])),
        ("jpeg", lambda: parse_jpeg_members(params["jpeg"])),
    ]


def _extract_checks(params: dict[str, Any]) -> list[tuple[str, Callable[[], object]]]:
    from extractors.methods import parse_method_names, parse_overrides

    return [("method", lambda: parse_method_names(params["method"])), ("set", lambda: parse_overrides(params.get("set_") or []))]


def _crawl_checks(params: dict[str, Any]) -> list[tuple[str, Callable[[], object]]]:
    from crawlers.sites import resolve_site

    return [("site", lambda: resolve_site(params["site"], params.get("site_root")))]


def _train_checks(params: dict[str, Any], stage: str) -> list[tuple[str, Callable[[], object]]]:
    from train.recipes import stage_recipe

    def schedule() -> object:
        from pipeline.training import show_training_config
        from train.schedule import parse_milestones

        milestones = params.get("lr_milestones")
        options = {key: params.get(key) for key in ("steps", "batch_size", "size", "preset", "epochs", "lr", "lr_schedule", "lr_gamma",
                                                     "warmup_steps", "crop", "flip", "label_flip", "critic_steps")}
        return show_training_config(params["recipe"], stage, None, lr_milestones=parse_milestones(milestones) if milestones is not None else None, **options)

    # The recipe first: the schedule's checks assume one that exists; their messages name their option.
    return [("recipe", lambda: stage_recipe(params["recipe"], stage)), ("options", schedule)]


def check_values(command: str, stage: str, params: dict[str, Any]) -> tuple[str, str] | None:
    """(key, what is wrong) of the first value the command would refuse, or None when all would pass."""
    checks = {
        "eval": lambda: _eval_checks(params),
        "shard": lambda: _shard_checks(params),
        "extract": lambda: _extract_checks(params),
        "crawl": lambda: _crawl_checks(params),
        "train": lambda: _train_checks(params, stage.split(".", 1)[-1]),
    }.get(command)
    for key, check in checks() if checks is not None else []:
        try:
            check()
        except (ValueError, PipeError) as exc:
            message = str(exc)
            named = re.match(r"--([a-z][a-z-]*)", message)
            return (named.group(1) if named else key), message
    return None
