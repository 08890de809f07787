"""`pipe demo`: every stage that exists, run on generated data, so a new user sees the whole flow."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.console import console
from pipeline.demo_data import write_demo_source
from pipeline.prepare.stage import PrepareConfig, PrepareStage
from pipeline.report import print_run_report
from pipeline.runner import RunnerConfig, run_stage


def run_demo(out: Path, images: int, seed: int, runner: RunnerConfig) -> None:
    source, root = out / "source", out / "dataset"
    expected_file = out / "expected.json"
    if not expected_file.exists():
        console.print(f"writing {images} generated illustrations and a few bad inputs to {source}")
        expected = write_demo_source(source, images, seed)
        expected_file.write_text(json.dumps(expected, indent=1, sort_keys=True))
    report = run_stage(PrepareStage(source=source, root=root, config=PrepareConfig()), root, runner, label="prepare")
    print_run_report(report)
    console.print(
        f"\n[bold]Where to look[/]\n"
        f"  inputs:            {source}  (what each should become: {expected_file})\n"
        f"  512x512 images:    {root / 'prepared'}\n"
        f"  prepare ledger:    {root / 'prepared.parquet'}  (one row per input, with status and reason)\n"
        f"  again at any time: pipe status {root}"
    )
