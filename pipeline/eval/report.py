"""The eval report: report.json (every number and the run's config) and a self-contained report.html
(tables, and a sketch | hints | output | truth grid with the images inlined, so the file can be
shared on its own); and the side-by-side table of two reports."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import cv2
import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from manifests.atomic import write_bytes_atomic
from manifests.images import encode_png
from pipeline.eval.run import GridRow

THUMBNAIL = 192
METRIC_NAMES = {"fid": "FID", "kid": "KID", "adherence": "hint error", "containment": "colour containment"}
# (path in a setting's entry, name, short name, True when lower is better, format)
COMPARED = (
    (("fid",), "Frechet distance", "FD", True, "{:.3f}"),
    (("kid", "mean"), "KID", "KID", True, "{:.5f}"),
    (("psnr", "mean"), "PSNR (dB)", "PSNR", False, "{:.3f}"),
    (("ssim", "mean"), "SSIM", "SSIM", False, "{:.4f}"),
    (("adherence", "mean"), "hint error (CIEDE2000)", "dE00", True, "{:.3f}"),
    (("containment", "score"), "colour containment", "contain", False, "{:.4f}"),
)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { width: %dpx; height: auto; image-rendering: pixelated; display: block; }
.note { color: #666; max-width: 60em; }
""" % THUMBNAIL


def _lookup(entry: dict, path: tuple[str, ...]):
    for part in path:
        if not isinstance(entry, dict) or entry.get(part) is None:
            return None
        entry = entry[part]
    return entry


def _png_data_uri(rgb: np.ndarray) -> str:
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    side = max(image.shape[:2])
    if side > THUMBNAIL:  # smaller images are scaled up by the browser (pixelated), not stored bigger
        scale = THUMBNAIL / side
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


def hint_picture(line: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """The faded sketch with the hints on top; sparse hints (single pixels) drawn as ringed dots so they show."""
    picture = np.repeat((line.astype(np.float32) * 0.5 + 127.5)[..., None], 3, axis=2)
    alpha = hint[..., 3:4].astype(np.float32) / 255.0
    picture = (picture * (1 - alpha) + hint[..., :3] * alpha).round().astype(np.uint8)
    ys, xs = np.nonzero(hint[..., 3] >= 128)
    if 0 < ys.size <= 256:
        radius = max(1, round(max(line.shape) / 64))
        for y, x in zip(ys, xs):
            colour = tuple(int(c) for c in hint[y, x, :3])
            cv2.circle(picture, (int(x), int(y)), radius + 1, (0, 0, 0), -1, lineType=cv2.LINE_AA)
            cv2.circle(picture, (int(x), int(y)), radius, colour, -1, lineType=cv2.LINE_AA)
    return picture


def _reason(entry: dict, metric: str) -> str:
    """`n/a`, with why when the report says (`not_computed`)."""
    reason = (entry.get("not_computed") or {}).get(metric)
    return f"n/a: {html.escape(reason)}" if reason else "n/a"


def not_computed_notes(report: dict) -> list[str]:
    """One line per reason some metrics were not computed, naming the metrics and the settings."""
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for setting, entry in report["settings"].items():
        by_reason: dict[str, list[str]] = {}
        for metric, reason in (entry.get("not_computed") or {}).items():
            by_reason.setdefault(reason, []).append(METRIC_NAMES.get(metric, metric))
        for reason, metrics in by_reason.items():
            grouped.setdefault((reason, tuple(metrics)), []).append(setting)
    return [f"{' and '.join(metrics)} n/a under {', '.join(settings)}: {reason}" for (reason, metrics), settings in grouped.items()]


def _fmt(value, pattern: str = "{:.4f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def _mean_std(stats: dict | None, pattern: str) -> str:
    if not stats or not stats.get("count"):
        return "n/a"
    return f"{pattern.format(stats['mean'])} &plusmn; {pattern.format(stats['std'])} (n={stats['count']})"


def _table(headers: list[str], rows: list[list[str]], table_id: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _distribution_rows(report: dict) -> list[list[str]]:
    rows = []
    for setting, entry in report["settings"].items():
        kid = entry.get("kid")
        kid_text = f"{kid['mean']:.5f} &plusmn; {kid['std']:.5f} ({kid['subsets']} subsets of {kid['subset_size']})" if kid else _reason(entry, "kid")
        fid = entry.get("fid")
        rows.append([html.escape(setting), str(entry["samples"]), html.escape(entry["label"]), _reason(entry, "fid") if fid is None else f"{fid:.3f}", kid_text])
    return rows


def _image_rows(report: dict) -> list[list[str]]:
    rows = []
    for setting, entry in report["settings"].items():
        adherence = entry.get("adherence")
        adherence_text = (f"{adherence['mean']:.2f} / {adherence['median']:.2f} / {adherence['p90']:.2f} (n={adherence['count']} hint pixels; the truth itself: {adherence['truth_mean']:.2f})"
                          if adherence and adherence.get("count") else _reason(entry, "adherence"))
        contained = entry.get("containment")
        if contained and contained.get("count"):
            contained_text = f"{contained['score']:.4f} (n={contained['count']} hints; {contained['absent']} absent, {contained['on_lines']} on lines)"
        elif contained:
            contained_text = f"n/a: no hint colour appears in the outputs ({contained['absent']} absent, {contained['on_lines']} on lines)"
        else:
            contained_text = _reason(entry, "containment")
        rows.append([html.escape(setting), _mean_std(entry["psnr"], "{:.2f}"), _mean_std(entry["ssim"], "{:.4f}"), adherence_text, contained_text])
    return rows


def unscored_of(report: dict) -> list[dict]:
    """The samples of the split the report names as not scored ({key, reason, detail}); none in older reports."""
    return (report.get("unscored") or {}).get("samples", [])


def _scored_text(report: dict) -> str:
    """`N samples`, or `N of M samples scored, K unscored` when some of the split were not scored."""
    unscored = len(unscored_of(report))
    return f"{report['samples']} of {report['split_samples']} samples scored, {unscored} unscored" if unscored else f"{report['samples']} samples"


def _unscored_section(report: dict) -> str:
    unscored = unscored_of(report)
    if not unscored:
        return ""
    rows = [[html.escape(s["key"]), html.escape(s["reason"]), html.escape(s["detail"])] for s in unscored]
    return (f'<h2>Unscored samples</h2><p class="note">{len(unscored)} of the split\'s {report["split_samples"]} samples were not scored; '
            f"every score below leaves them out.</p>{_table(['key', 'reason', 'detail'], rows, 'unscored')}")


def _config_rows(config: dict, prefix: str = "") -> list[list[str]]:
    rows = []
    for key, value in config.items():
        if isinstance(value, dict):
            rows += _config_rows(value, f"{prefix}{key}.")
        else:
            rows.append([html.escape(prefix + key), html.escape(json.dumps(value) if not isinstance(value, str) else value)])
    return rows


def _grid(setting: str, rows: list[GridRow]) -> str:
    body = "".join(
        f'<tr><td title="{html.escape(row.key)}">{html.escape(row.key[:12])}</td>'
        + "".join(f'<td><img alt="{kind} {html.escape(row.key)}" src="{_png_data_uri(image)}"></td>'
                  for kind, image in (("sketch", row.line), ("hints", hint_picture(row.line, row.hint)), ("output", row.output), ("truth", row.truth)))
        + "</tr>"
        for row in rows
    )
    return (f'<h3>{html.escape(setting)}</h3><table class="grid" id="grid-{html.escape(setting)}"><thead><tr><th>key</th><th>sketch</th>'
            f"<th>hints</th><th>output</th><th>truth</th></tr></thead><tbody>{body}</tbody></table>")


def render_html(report: dict, grids: dict[str, list[GridRow]]) -> str:
    name = html.escape(report["name"])
    small = report["samples"] < (report.get("feature_dim") or 0) and any(entry.get("fid") is not None for entry in report["settings"].values())
    caution = (f'<p class="note">{report["samples"]} samples is fewer than the {report["feature_dim"]} feature dimensions: '
               "the Frechet distances are biased upwards and only comparable with runs of the same sample count; KID is unbiased.</p>") if small else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pipe eval: {name}</title><style>{STYLE}</style></head>
<body>
<h1>pipe eval: {name}</h1>
<p>{_scored_text(report)} of split <b>{html.escape(report['config']['split'])}</b>, created {html.escape(report['created'])} by pipe {html.escape(report['pipe_version'])}.</p>
{_unscored_section(report)}
<h2>Distribution scores</h2>
{_table(["hints", "samples", "metric", "value (lower is better)", "KID (lower is better)"], _distribution_rows(report), "distribution")}
{caution}
{"".join(f'<p class="note">{html.escape(note)}</p>' for note in not_computed_notes(report))}
<h2>Per-image scores</h2>
{_table(["hints", "PSNR dB (higher is better)", "SSIM (higher is better)", "hint error CIEDE2000: mean / median / p90 (lower is better)", "colour containment (higher is better)"], _image_rows(report), "per-image")}
<p class="note">Hint error: CIEDE2000 between each hint pixel's colour and the output's mean colour within {report['config']['window_radius']} pixels of it
(the truth itself scores above 0 where the window takes in texture or an edge: that is the floor).
Colour containment: 1 minus the mean share of a hint's colour that the output puts outside the hint's line-bounded region, where the truth does not have it either
(CIE76 tolerance {report['config']['colour_tolerance']}, line pixels: grey below {report['config']['line_threshold']}).</p>
<h2>Samples</h2>
{"".join(_grid(setting, rows) for setting, rows in grids.items())}
<h2>Run</h2>
{_table(["setting", "value"], _config_rows(report["config"]), "config")}
</body></html>
"""


def write_report(report: dict, grids: dict[str, list[GridRow]], folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, html_path = folder / "report.json", folder / "report.html"
    write_bytes_atomic(json_path, (json.dumps(report, indent=2) + "\n").encode())
    write_bytes_atomic(html_path, render_html(report, grids).encode())
    return json_path, html_path


def read_report(path: Path) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"report {path} not found") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a report.json ({exc.msg})") from None
    if not isinstance(report, dict) or "settings" not in report:
        raise ValueError(f"{path} is not a `pipe eval` report.json (no settings)")
    return report


def summary_table(report: dict) -> Table | Group:
    """The report's headline numbers, one row per hint setting; then a line per unscored sample, if any."""
    table = Table(title=f"{report['name']}: {_scored_text(report)}")
    table.add_column("hints")
    table.add_column("FD is")
    for _, _, short, _, _ in COMPARED:
        table.add_column(short, justify="right")
    for setting, entry in report["settings"].items():
        table.add_row(setting, entry["label"], *(_fmt(_lookup(entry, path), pattern) for path, _, _, _, pattern in COMPARED))
    table.caption = "FD: Frechet distance; dE00: hint error (CIEDE2000); contain: colour containment"
    notes = [Text(note) for note in not_computed_notes(report)]
    notes += [Text(f"unscored {s['key']}: {s['reason']} ({s['detail']})") for s in unscored_of(report)]
    return Group(table, *notes) if notes else table


def compare_table(a: dict, b: dict) -> Table:
    """Every metric of every hint setting the two reports share, side by side, with the change and the better one."""
    table = Table(title=f"{a['name']} (a) vs {b['name']} (b)")
    for column in ("hints", "metric", "a", "b", "b - a", "better"):
        table.add_column(column, justify="right" if column in ("a", "b", "b - a") else "left")
    for setting in [s for s in a["settings"] if s in b["settings"]]:
        for path, metric, _, lower_better, pattern in COMPARED:
            value_a, value_b = _lookup(a["settings"][setting], path), _lookup(b["settings"][setting], path)
            if value_a is None and value_b is None:
                continue
            if path == ("fid",):
                metric = a["settings"][setting]["label"]
            if value_a is None or value_b is None:
                table.add_row(setting, metric, _fmt(value_a, pattern), _fmt(value_b, pattern), "", "")
                continue
            better = "=" if value_a == value_b else ("a" if (value_a < value_b) == lower_better else "b")
            table.add_row(setting, metric, pattern.format(value_a), pattern.format(value_b), ("{:+" + pattern[2:]).format(value_b - value_a), better)
    only = sorted(set(a["settings"]) ^ set(b["settings"]))
    notes = [f"in one report only: {', '.join(only)}"] if only else []
    notes += [f"{side}: {_scored_text(report)}" for side, report in (("a", a), ("b", b)) if unscored_of(report)]
    if notes:
        table.caption = "; ".join(notes)
    return table
