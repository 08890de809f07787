"""`pipe shard` behind the CLI: option parsing into a ShardConfig, the run or the verification, the report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from manifests.layout import DatasetLayout
from manifests.shards import finished_tars
from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.report import print_run_report
from pipeline.session import require_dataset
from pipeline.shard.config import JPEG_MEMBERS, ShardConfig
from pipeline.shard.plan import extracted_methods
from pipeline.shard.resume import PARAMETERS, recorded_shard_options, with_recorded
from pipeline.shard.sheet import contact_sheet as write_contact_sheet
from pipeline.shard.stage import ShardState, run_shard, shards_root
from pipeline.shard.verify import verify_shard_set
from synth.artifacts import parse_artifact_names
from synth.common import parse_subset
from synth.hints import parse_hint_names
from synth.lines import GRAY_SOURCE, LineAugment, parse_line_weights


def build_config(root: Path, lines: str | None, gray_share: float, equalize_share: float, jitter: float, hints: str,
                 no_hint_share: float, artifacts: str, artifacts_near_hints: bool, seed: int, val: float, shard_samples: int, shard_mb: float,
                 histogram_images: int, png_compression: int | None, jpeg: str, jpeg_quality: int, lean_train: bool, workers: int, executor: str, ray_address: str | None,
                 save_every: float) -> ShardConfig:
    root = root.resolve()
    require_dataset(root)
    try:
        if lines is None:
            # The grey image is not line art: it feeds --gray-share only, unless --lines names it.
            methods = [method for method in extracted_methods(root) if method != GRAY_SOURCE]
            if not methods:
                raise PipeError(f"no line art in {root}: run `pipe extract {root} --method xdog` first (or give --lines)")
            weights = tuple((m, 1.0) for m in methods)
        else:
            weights = parse_line_weights(lines)
        return ShardConfig(
            root=root,
            lines=LineAugment(weights, gray_share=gray_share, equalize_share=equalize_share, min_jitter=jitter),
            hints=parse_hint_names(hints),
            no_hint_share=no_hint_share,
            artifacts=parse_artifact_names(alone_or_absent("--artifacts", artifacts)),
            artifacts_near_hints=artifacts_near_hints,
            val_fraction=val,
            max_samples=shard_samples,
            max_bytes=int(shard_mb * 1024 * 1024),
            seed=seed,
            histogram_images=histogram_images,
            png_compression=png_compression,
            jpeg=parse_jpeg_members(jpeg),
            jpeg_quality=jpeg_quality,
            lean_train=lean_train,
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            flush_seconds=save_every,
        )
    except ValueError as exc:
        raise PipeError(str(exc)) from None


def alone_or_absent(flag: str, text: str) -> str:
    """`text` unless it names `none` beside other names: that would drop one of them silently."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if "none" in names and len(names) > 1:
        others = ", ".join(name for name in names if name != "none")
        raise PipeError(f"{flag}: none cannot be combined with {others}; give none alone, or only the names to use")
    return text


def parse_jpeg_members(text: str) -> tuple[str, ...]:
    """`color,draft` -> ("color", "draft") in member order; `none` or empty -> ()."""
    names, unknown = parse_subset(alone_or_absent("--jpeg", text), JPEG_MEMBERS)
    if unknown:
        raise PipeError(f"--jpeg: unknown member {', '.join(unknown)}; choose from {', '.join(JPEG_MEMBERS)} (hints always stay PNG), or none")
    return names


def shards_table(states: dict[str, ShardState]) -> Table:
    table = Table(title="shards", title_justify="left")
    for column in ("split", "shards", "samples", "MB"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split, state in states.items():
        table.add_row(split, f"{len(state.summaries):,}", f"{sum(s.count for s in state.summaries):,}", f"{sum(s.bytes for s in state.summaries) / 1e6:,.1f}")
    return table


def run_shard_command(root: Path, verify: bool, redo: bool, contact_sheet: Path | None, given: set[str] | None = None, **options) -> None:
    """The command: `given` names the parameters the command line set (None: all); the others take
    their recorded values on a resume (pipeline.shard.resume)."""
    if contact_sheet is not None:
        train = shards_root(root.resolve()) / "train"
        if not finished_tars(train):
            raise PipeError(f"no finished train shards in {train}: run `pipe shard {root}` first")
        try:
            shown = write_contact_sheet(train, contact_sheet)
        except FileNotFoundError as exc:
            raise PipeError(str(exc)) from None
        console.print(f"contact sheet of {shown} samples: {contact_sheet}")
        return
    if verify:
        verify_command(root.resolve())
        return
    config = build_config(root, **options)
    note = None
    if not redo:
        config, taken = with_recorded(config, recorded_shard_options(config.root), set(PARAMETERS.values()) if given is None else given)
        if taken:
            note = f"resuming with the options recorded in {DatasetLayout(config.root).shard_config}: {' '.join(taken)}"
    report, states = run_shard(config, redo=redo, note=note)
    print_run_report(report)
    console.print(shards_table(states))


def verify_command(root: Path) -> None:
    """Print each problem of the shard set, then the verdict; exit 1 when there are problems."""
    try:
        report = verify_shard_set(root)
    except FileNotFoundError as exc:
        raise PipeError(str(exc)) from None
    for problem in report.problems:
        console.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
    verdict = "[green]all good[/]" if report.ok else f"[red]{len(report.problems)} problem(s)[/]"
    console.print(f"verified {report.files} files: {report.shards} shards, {report.samples:,} samples, {report.bytes / 1e6:,.1f} MB: {verdict}")
    if not report.ok:
        raise typer.Exit(1)
