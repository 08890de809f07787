"""report.json on disk: written with a `_digest` (the SHA-256 of its canonical JSON, as pipe's other
records carry: pipeline.recorded_options), and read back through that check, so a flipped bit that
still parses (a digit of a FID) is named as damage instead of shown as a score.

The digest is over the canonical (sorted) JSON, so the file keeps the report's own key order (the
settings in the order they were scored). A report without `_digest` was written by an older pipe
and is read as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from manifests.atomic import write_bytes_atomic
from manifests.layout import REPORT_JSON_FILE
from pipeline.recorded_options import DIGEST_FIELD, DamagedRecord, json_digest, parse_digested_json

REPORT_HTML_FILE = "report.html"


def report_json_text(report: dict) -> str:
    """The report as report.json holds it: its keys in order, then its digest."""
    plain = {key: value for key, value in report.items() if key != DIGEST_FIELD}
    return json.dumps({**plain, DIGEST_FIELD: json_digest(plain)}, indent=2) + "\n"


def write_report(report: dict, grids: dict, folder: Path) -> tuple[Path, Path]:
    """FOLDER/report.json (digested) and FOLDER/report.html, each written atomically."""
    from pipeline.eval.report import render_html  # here: reading a report (pipe status) needs no torch

    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / REPORT_JSON_FILE, folder / REPORT_HTML_FILE
    write_bytes_atomic(json_path, report_json_text(report).encode())
    write_bytes_atomic(html_path, render_html(report, grids).encode())
    return json_path, html_path


def read_report(path: Path) -> dict:
    """A report.json `pipe eval` wrote; ValueError naming the file when it is damaged or no report."""
    try:
        report, _ = parse_digested_json(Path(path).read_bytes().decode())
    except FileNotFoundError:
        raise FileNotFoundError(f"report {path} not found") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is damaged (not text)") from None
    except DamagedRecord as exc:
        raise ValueError(f"{path} is damaged ({exc})") from None
    if "settings" not in report or not isinstance(report["settings"], dict):
        raise ValueError(f"{path} is not a `pipe eval` report.json (no settings)")
    return report
