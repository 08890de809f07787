"""`pipe eval`: score checkpoints on a split."""

from __future__ import annotations

import dataclasses
from itertools import chain, count
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipeline.commands.app import app, lazy_epilog
from pipeline.commands.common import DEVICE_PANEL
from pipeline.commands.colorize import WEIGHTS_HELP
from pipeline.console import console
from pipeline.errors import PipeError
from pipeline.executors import default_workers

EVAL_PANEL = "Scoring"


def _eval_epilog() -> str:
    from pipeline.eval.hints import __doc__ as settings_doc

    return "[bold]Hint settings[/] (--hints, comma-separated; each is coloured and scored separately):\n\n" + "\n\n".join(
        line.strip() for line in settings_doc.strip().splitlines()[2:] if line.strip()
    )


@app.command("eval", cls=lazy_epilog(_eval_epilog))
def eval_command(
    root: Annotated[Optional[Path], typer.Argument(help="The dataset folder (after `pipe shard`): reads ROOT/shards/SPLIT, writes ROOT/reports/NAME.", show_default=False)] = None,
    draft: Annotated[Optional[Path], typer.Option(help="Checkpoint of a trained draft stage (ROOT/runs/NAME/checkpoints/last.pt).", show_default=False)] = None,
    refine: Annotated[Optional[Path], typer.Option(help="Checkpoint of a refinement stage, fed the draft's output. (default: draft only)", show_default=False)] = None,
    split: Annotated[str, typer.Option(help="Which shard split to score.")] = "val",
    hints: Annotated[str, typer.Option(help="Hint settings to colour under: none gives FID, cfid gives Lee & Lee's C-FID (see below).")] = "none,cfid",
    lines: Annotated[str, typer.Option(help="Line sources, each scored side by side in one report: shard (each sample's line.png, as pipe shard drew it), or line methods read from ROOT/lines.parquet: real (pipe import pairs), xdog, dilate, ... Samples without a method's line are left out of its column (no_lines).")] = "shard",
    repeats: Annotated[int, typer.Option(help="Draw the seeded hints (points, patches, blur, histogram-guess) this many times, seeds from --seed and the repeat; every score is reported as mean and standard deviation over the repeats.", rich_help_panel=EVAL_PANEL)] = 1,
    reference: Annotated[Optional[Path], typer.Option(help="With --hints histogram-guess: guess the hint colours from this image's colour histogram. (default: the dataset's, ROOT/shards/_histogram.npy)", show_default=False, rich_help_panel=EVAL_PANEL)] = None,
    name: Annotated[Optional[str], typer.Option(help="Report name: ROOT/reports/NAME; an existing report of that name is kept unless --overwrite. (default: the runs' names and the split, numbered -2, -3, ... when that report exists)", show_default=False)] = None,
    weights_dir: Annotated[Optional[Path], typer.Option(help="Folder holding pt_inception-2015-12-05-6726825d.pth (pytorch-fid's FID Inception; torch-fidelity's weights-inception-2015-12-05-6726825d.pth also works). (default: the weights folder, see `pipe weights list`)", show_default=False, rich_help_panel=EVAL_PANEL)] = None,
    fid: Annotated[bool, typer.Option(help="Compute FID and KID (needs the Inception weights; without the default file they are n/a and the rest is scored); --no-fid scores PSNR, SSIM and the hint scores only.", rich_help_panel=EVAL_PANEL)] = True,
    fid_impl: Annotated[str, typer.Option("--fid-impl", help="Whose preprocessing the Inception features follow: tf (TensorFlow 1.x bilinear, torch-fidelity), pytorch-fid or clean (clean-fid); see `pipe fid --help`.", rich_help_panel=EVAL_PANEL)] = "tf",
    kid_subsets: Annotated[int, typer.Option(min=1, help="KID: random subsets to average over.", rich_help_panel=EVAL_PANEL)] = 100,
    kid_subset_size: Annotated[int, typer.Option(min=2, help="KID: samples per subset (capped by the split's size).", rich_help_panel=EVAL_PANEL)] = 1000,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Score only the first N samples of the split. (default: all)", show_default=False, rich_help_panel=EVAL_PANEL)] = None,
    seed: Annotated[int, typer.Option(help="Seed of KID's subsets and of points/patches/blur/histogram-guess hint draws (cfid hints depend on the key only).", rich_help_panel=EVAL_PANEL)] = 0,
    weights: Annotated[str, typer.Option(help=WEIGHTS_HELP, rich_help_panel=EVAL_PANEL)] = "auto",
    grid: Annotated[int, typer.Option(min=0, help="Samples per hint setting shown in the report's image grid.", rich_help_panel=EVAL_PANEL)] = 8,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per batch.", rich_help_panel=DEVICE_PANEL)] = 16,
    device: Annotated[str, typer.Option(help="auto (CUDA when present), cpu, cuda or cuda:N.", rich_help_panel=DEVICE_PANEL)] = "auto",
    workers: Annotated[int, typer.Option(min=0, help="Loader processes decoding the shards (0: in this process). The scores do not depend on it. (default: 4, or the CPUs if fewer)", show_default=False, rich_help_panel=DEVICE_PANEL)] = min(4, default_workers()),
    out: Annotated[Optional[Path], typer.Option(help="Report folder; one that holds a report is kept unless --overwrite. (default: ROOT/reports/NAME)", show_default=False)] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the report already in ROOT/reports/NAME (with the default name: the unnumbered one) or --out.")] = False,
    compare: Annotated[Optional[tuple[Path, Path]], typer.Option(help="Print two report.json files side by side instead (no ROOT needed).", show_default=False)] = None,
) -> None:
    """Score checkpoints on a split: FID, KID and C-FID, hint adherence, colour containment, PSNR and SSIM.

    Every sample of the split is coloured under each hint setting from each line source (--lines);
    FID-family scores use the FID Inception network with the reference preprocessing. Writes
    report.json and a self-contained report.html (tables, line sources side by side, and a
    sketch | hints | output | truth grid).
    """
    from pipeline.eval.report import summary_table
    from pipeline.eval.report_compare import compare_table
    from pipeline.eval.report_file import read_report, write_report

    if compare is not None:
        try:
            console.print(compare_table(read_report(compare[0]), read_report(compare[1])))
        except (FileNotFoundError, ValueError) as exc:
            raise PipeError(str(exc)) from None
        return
    if root is None or draft is None:
        raise PipeError("give ROOT and --draft CHECKPOINT (or --compare A.json B.json)")
    from pipeline.eval.hints import parse_settings
    from pipeline.eval.lines import parse_line_sources
    from train.networks.inception import inception_weights_in
    from pipeline.eval.run import EvalConfig, run_eval

    try:
        config = EvalConfig(
            root=root, draft=draft, refine=refine, split=split, settings=parse_settings(hints), lines=parse_line_sources(lines), repeats=repeats, reference=reference, name=name,
            inception_weights=inception_weights_in(weights_dir) if weights_dir else None, fid=fid, fid_impl=fid_impl,
            kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, batch_size=batch_size, device=device, workers=workers, limit=limit,
            grid_samples=grid, seed=seed, weights=weights,
        )
        folder, config = report_destination(config, out, overwrite)  # before the scoring, which can take hours
        report, grids = run_eval(config)
    except (FileNotFoundError, ValueError) as exc:
        raise PipeError(str(exc)) from None
    json_path, html_path = write_report(report, grids, folder)
    console.print(summary_table(report))
    console.print(f"report: {html_path} (numbers: {json_path})")


def _holds_report(folder: Path) -> bool:
    from manifests.layout import REPORT_JSON_FILE
    from pipeline.eval.report_file import REPORT_HTML_FILE

    return (folder / REPORT_JSON_FILE).exists() or (folder / REPORT_HTML_FILE).exists()


def report_destination(config, out: Path | None, overwrite: bool):
    """(the report folder, the config with its report name) with no earlier report replaced: an
    explicit --name or --out that holds one is refused without `overwrite`; the default name takes the
    first free of NAME, NAME-2, NAME-3, ..."""
    from manifests.layout import DatasetLayout

    layout = DatasetLayout(config.root)
    if out is not None or config.name:
        folder = out if out is not None else layout.report(config.name)
        if _holds_report(folder) and not overwrite:
            how = "--out FOLDER" if out is not None else "--name NAME"
            raise PipeError(f"{folder} already holds a report: pass --overwrite to replace it, or give another {how}")
        return folder, config
    base = config.report_name()
    name = base if overwrite else next(n for n in chain([base], (f"{base}-{i}" for i in count(2))) if not _holds_report(layout.report(n)))
    if name != base:
        console.print(f"note: report {base} exists (kept): this one is {name}", soft_wrap=True, highlight=False)
    return layout.report(name), dataclasses.replace(config, name=name)
