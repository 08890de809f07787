"""`pipe status ROOT`: where every sample of a dataset went, stage by stage, and its training runs and reports."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from manifests.layout import DatasetLayout
from manifests.ledger import Ledger, LedgerError, rows_by_status
from manifests.schema import IMPORTS
from pipeline.console import console, counts_table
from pipeline.errors import PipeError
from pipeline.eval.report_file import read_report
from pipeline.recorded_options import DamagedRecord, read_digested_json
from pipeline.stages import ledger_stages


def show_status(root: Path) -> int:
    """Print one table per stage ledger, then the runs and the reports; returns the number of unreadable ledgers."""
    if root.is_file():
        raise PipeError(f"{root} is a file, not a dataset folder: give the folder that holds the ledgers (e.g. the one with prepared.parquet)")
    if not root.is_dir():
        raise PipeError(f"dataset folder not found: {root}")
    found = unreadable = 0
    # `pipe import pairs` keeps its own ledger beside the stages' (before prepared: it feeds prepared and lines).
    for schema in (IMPORTS, *(entry.ledger_schema() for entry in ledger_stages())):
        ledger = Ledger(root, schema)
        if not ledger.exists():
            continue
        found += 1
        try:
            table = ledger.columns(["status", "reason"])  # counts only: not every tag, key or id of every post
        except LedgerError as exc:
            console.print(f"[red]error:[/] {exc}")
            unreadable += 1
            continue
        title = f"{schema.stage}  ({ledger.path.name}, {schema.id_column} is the input id)"
        console.print(counts_table(title, rows_by_status(table)))
        if ledger.pending_parts():
            console.print(
                f"[yellow]  {len(ledger.pending_parts())} part file(s) from an unfinished run are included; "
                "run the stage again to finish it[/]"
            )
    layout = DatasetLayout(root)
    runs, reports, jobs = runs_table(layout), reports_table(layout), jobs_table(layout)
    for table in (runs, reports, jobs):
        if table.row_count:
            console.print(table)
    if not found and not runs.row_count and not reports.row_count:
        console.print(f"no ledgers in {root} yet: run `pipe prepare SOURCE {root}` first")
    return unreadable


def _folders(parent: Path) -> list[Path]:
    """Sub-folders in name order, hidden ones (reports/.cache) left out."""
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")) if parent.is_dir() else []


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def last_metrics(path: Path) -> dict:
    """The last record of a run's metrics.jsonl ({} when there is none yet)."""
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        return json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError):
        return {}


class _Opaque:
    """Stands in for every object of a checkpoint that is not a plain value (tensors, arrays, classes)."""

    def __new__(cls, *args: object, **kwargs: object) -> _Opaque:
        return object.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Opaque:
        return _Opaque()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass


class _PlainUnpickler(pickle.Unpickler):
    """Reads the plain values of a pickle and nothing else: no class is looked up, no code runs."""

    def find_class(self, module: str, name: str) -> Any:
        return _Opaque

    def persistent_load(self, pid: object) -> None:
        return None


def checkpoint_step(path: Path) -> int | None:
    """The step a `pipe train` checkpoint was saved at, read without torch (or None if unreadable).

    torch.save writes a zip whose data.pkl holds the payload dict; the tensors are stored apart, so
    the step is read from that pickle alone, every object in it replaced by a stand-in.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
            payload = _PlainUnpickler(io.BytesIO(archive.read(name))).load()
    except Exception:  # noqa: BLE001 - missing, truncated, not a zip: the step is unknown
        return None
    step = payload.get("step") if isinstance(payload, dict) else None
    return step if isinstance(step, int) else None


def _number(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "-"


def runs_table(layout: DatasetLayout) -> Table:
    """One row per ROOT/runs/<name>: recipe, last logged step, last checkpoint and its step, last metrics."""
    table = Table(title="runs  (ROOT/runs/<name>)", title_justify="left")
    for column in ("run", "recipe", "last step", "checkpoint", "last metrics"):
        table.add_column(column, justify="right" if column == "last step" else "left")
    for folder in _folders(layout.runs):
        name = folder.name
        config = _read_json(layout.run_config(name))
        metrics = last_metrics(layout.run_metrics(name))
        checkpoint = layout.run_checkpoint(name)
        if checkpoint.is_file():
            step = checkpoint_step(checkpoint)
            saved = f"{layout.relative(checkpoint)} (step {step if step is not None else '?'})"
        else:
            saved = "none yet"
        recipe = " ".join(str(config[k]) for k in ("recipe", "stage") if config.get(k))
        steps = f"{metrics['step']:,}" if isinstance(metrics.get("step"), int) else "-"
        if isinstance(config.get("steps"), int):
            steps += f" / {config['steps']:,}"
        values = ", ".join(f"{key} {_number(value)}" for key, value in metrics.items() if key != "step")
        table.add_row(name, recipe or "-", steps, saved, values or "-")
    return table


JOBS_SHOWN = 5


def jobs_table(layout: DatasetLayout) -> Table:
    """The last `pipe run`s of this dataset (ROOT/jobs/<time>/summary.json): when, exit code, each stage's outcome."""
    table = Table(title=f"job runs  (ROOT/jobs/<time>/, the last {JOBS_SHOWN})", title_justify="left")
    for column in ("run", "exit", "stages"):
        table.add_column(column)
    for folder in _folders(layout.jobs)[-JOBS_SHOWN:]:
        path = folder / "summary.json"
        if not path.is_file():
            continue
        try:
            record = read_digested_json(path)
        except (DamagedRecord, OSError) as exc:  # shown, not skipped: a run that vanished would hide a failure
            table.add_row(folder.name, "[red]damaged[/]", f"{layout.relative(path)} is damaged ({exc})")
            continue
        code = record.get("exit_code")
        exit_text = "running or killed" if code is None else str(code)
        if code is None and record.get("running"):
            exit_text += f" (in {record['running']})"
        stages = ", ".join(f"{s.get('name')} {s.get('status')}" for s in record.get("stages") or [])
        table.add_row(folder.name, exit_text, stages or "-")
    return table


def reports_table(layout: DatasetLayout) -> Table:
    """One row per setting of each ROOT/reports/<name>/report.json: samples, FID (C-FID, ...), PSNR."""
    table = Table(title="reports  (ROOT/reports/<name>/report.json)", title_justify="left")
    for column in ("report", "samples", "setting", "FID", "PSNR (dB)"):
        table.add_column(column, justify="left" if column in ("report", "setting") else "right")
    for folder in _folders(layout.reports):
        path = layout.report_json(folder.name)
        try:
            report = read_report(path) if path.is_file() else {}
        except ValueError as exc:  # shown, not skipped: a damaged report must not pass as a score or vanish
            table.add_row(folder.name, "[red]damaged[/]", escape(str(exc)), "-", "-")
            continue
        settings = report.get("settings")
        if not isinstance(settings, dict):
            continue
        for index, (setting, entry) in enumerate(settings.items()):
            fid = entry.get("fid")
            fid_text = _number(fid, 5) if fid is not None else f"n/a: {entry.get('not_computed', {}).get('fid', 'not computed')}"
            psnr = (entry.get("psnr") or {}).get("mean")
            table.add_row(
                folder.name if index == 0 else "", f"{report.get('samples', '-')}" if index == 0 else "",
                f"{setting} ({entry.get('label', setting)})", fid_text, _number(psnr, 4),
            )
    return table
