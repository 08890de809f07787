"""The eval report as people read it: a self-contained report.html (tables, and a sketch | hints |
output | truth grid with the images inlined, so the file can be shared on its own) and the console
summary. report.json (every number and the run's config) is written and read back with its digest by
pipeline/eval/report_file.py; the side-by-side table of two reports is pipeline/eval/report_compare.py.

With several line sources (--lines real,xdog) the page and the console lead with one table in Lee &
Lee's layout (a row per hint setting and metric, a column per line source), then each source's own
section; with --repeats every number carries its spread over the repeats (value ± S)."""

from __future__ import annotations

import base64
import html
import json

import cv2
import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from manifests.images import encode_png
from pipeline.eval.run import GridRow, lookup

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


def sections(report: dict) -> dict[str, dict]:
    """{line source: {"label", "samples", "unscored", "settings"}}: the report's `lines`, or for a report
    written before --lines, its settings as the one source `shard`."""
    lines = report.get("lines")
    if isinstance(lines, dict) and lines:
        return lines
    return {"shard": {"label": "shard lines", "samples": report.get("samples"), "unscored": {"count": 0, "samples": []}, "settings": report["settings"]}}


def _entries(report: dict):
    """(source, setting, entry) of every line source and hint setting."""
    for source, section in sections(report).items():
        for setting, entry in section["settings"].items():
            yield source, setting, entry


def _reason(entry: dict, metric: str) -> str:
    """`n/a`, with why when the report says (`not_computed`)."""
    reason = (entry.get("not_computed") or {}).get(metric)
    return f"n/a: {html.escape(reason)}" if reason else "n/a"


def not_computed_notes(report: dict) -> list[str]:
    """One line per reason some metrics were not computed, naming the metrics and the settings
    (`source/setting` when the report has several line sources)."""
    several = len(sections(report)) > 1
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for source, setting, entry in _entries(report):
        by_reason: dict[str, list[str]] = {}
        for metric, reason in (entry.get("not_computed") or {}).items():
            by_reason.setdefault(reason, []).append(METRIC_NAMES.get(metric, metric))
        for reason, metrics in by_reason.items():
            grouped.setdefault((reason, tuple(metrics)), []).append(f"{source}/{setting}" if several else setting)
    return [f"{' and '.join(metrics)} n/a under {', '.join(settings)}: {reason}" for (reason, metrics), settings in grouped.items()]


def fid_impl_note(report: dict) -> str | None:
    """Which FID implementation's preprocessing the features followed (reports before --fid-impl: tf)."""
    config = report.get("config") or {}
    if not any(entry.get("fid") is not None for _, _, entry in _entries(report)):
        return None
    impl = config.get("fid_impl", "tf")
    return f"FID features: --fid-impl {impl} ({config.get('resize', 'TensorFlow 1.x bilinear to 299, (x - 128) / 128')})"


def repeats_of(report: dict) -> int:
    return int(report.get("repeats") or (report.get("config") or {}).get("repeats") or 1)


def repeats_note(report: dict) -> str | None:
    """What the ± after a number means when the hints were drawn several times."""
    repeats = repeats_of(report)
    if repeats < 2:
        return None
    config = report.get("config") or {}
    return (f"--repeats {repeats}: hints drawn {repeats} times (seeds from --seed {config.get('seed', 0)} and the repeat); every number is the mean over the repeats, "
            "and \u00b1 S after it is its sample standard deviation over them (0 where the hints do not depend on the seed: none, cfid, shard)")


def _spread(entry: dict, path: tuple[str, ...]) -> float | None:
    """The standard deviation over the repeats of the number at `path` (None for a single run)."""
    return lookup(entry.get("spread") or {}, path) if entry.get("repeats") else None


def _with_spread(entry: dict, path: tuple[str, ...], pattern: str, plus_minus: str = "\u00b1") -> str:
    """The number at `path`, `value ± spread` when the report has repeats; `n/a` when it is null."""
    value = lookup(entry, path)
    if value is None:
        return "n/a"
    spread = _spread(entry, path)
    return pattern.format(value) + (f" {plus_minus} {pattern.format(spread)}" if spread is not None else "")


def _repeat_suffix(entry: dict, path: tuple[str, ...], pattern: str) -> str:
    spread = _spread(entry, path)
    return f"; over {entry['repeats']} repeats &plusmn; {pattern.format(spread)}" if spread is not None else ""


def _mean_std(entry: dict, metric: str, pattern: str) -> str:
    stats = entry.get(metric)
    if not stats or not stats.get("count"):
        return _reason(entry, metric) if stats is None else "n/a"
    return f"{pattern.format(stats['mean'])} &plusmn; {pattern.format(stats['std'])} (n={_count(stats['count'])}){_repeat_suffix(entry, (metric, 'mean'), pattern)}"


def _count(value) -> str:
    """A count, or the mean count over repeats (hint pixels drawn per repeat differ)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _table(headers: list[str], rows: list[list[str]], table_id: str, text_columns: int = 1) -> str:
    """An HTML table whose first `text_columns` columns are text, the others numbers (right-aligned)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i >= text_columns else f"<td>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{html.escape(table_id)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _distribution_rows(section: dict) -> list[list[str]]:
    rows = []
    for setting, entry in section["settings"].items():
        kid = entry.get("kid")
        kid_text = (f"{kid['mean']:.5f} &plusmn; {kid['std']:.5f} ({_count(kid['subsets'])} subsets of {_count(kid['subset_size'])}){_repeat_suffix(entry, ('kid', 'mean'), '{:.5f}')}"
                    if kid else _reason(entry, "kid"))
        fid = entry.get("fid")
        fid_text = _reason(entry, "fid") if fid is None else _with_spread(entry, ("fid",), "{:.3f}", "&plusmn;")
        rows.append([html.escape(setting), str(entry["samples"]), html.escape(entry["label"]), fid_text, kid_text])
    return rows


def _image_rows(section: dict) -> list[list[str]]:
    rows = []
    for setting, entry in section["settings"].items():
        adherence = entry.get("adherence")
        adherence_text = (f"{adherence['mean']:.2f} / {adherence['median']:.2f} / {adherence['p90']:.2f} (n={_count(adherence['count'])} hint pixels; the truth itself: {adherence['truth_mean']:.2f})"
                          f"{_repeat_suffix(entry, ('adherence', 'mean'), '{:.2f}')}"
                          if adherence and adherence.get("count") else _reason(entry, "adherence"))
        contained = entry.get("containment")
        if contained and contained.get("count"):
            contained_text = (f"{contained['score']:.4f} (n={_count(contained['count'])} hints; {_count(contained['absent'])} absent, {_count(contained['on_lines'])} on lines)"
                              f"{_repeat_suffix(entry, ('containment', 'score'), '{:.4f}')}")
        elif contained:
            contained_text = f"n/a: no hint colour appears in the outputs ({_count(contained['absent'])} absent, {_count(contained['on_lines'])} on lines)"
        else:
            contained_text = _reason(entry, "containment")
        rows.append([html.escape(setting), _mean_std(entry, "psnr", "{:.2f}"), _mean_std(entry, "ssim", "{:.4f}"), adherence_text, contained_text])
    return rows


def unscored_of(report: dict) -> list[dict]:
    """The samples of the split the report names as not scored ({key, reason, detail}); none in older reports."""
    return (report.get("unscored") or {}).get("samples", [])


def scored_text(report: dict) -> str:
    """`N samples`, or `N of M samples scored, K unscored` when some of the split were not scored."""
    unscored = len(unscored_of(report))
    return f"{report['samples']} of {report['split_samples']} samples scored, {unscored} unscored" if unscored else f"{report['samples']} samples"


def _reason_counts(samples: list[dict]) -> str:
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample["reason"]] = counts.get(sample["reason"], 0) + 1
    return ", ".join(f"{count} {reason}" for reason, count in counts.items())


def source_notes(report: dict) -> list[str]:
    """One line per line source with samples it could not score (`real: 4 of 6 samples scored; 2 no_lines`)."""
    notes = []
    for source, section in sections(report).items():
        missing = (section.get("unscored") or {}).get("samples", [])
        if missing:
            notes.append(f"{source}: {section['samples']} of {report['samples']} samples scored; {_reason_counts(missing)}")
    return notes


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


def _grid(title: str, grid_id: str, rows: list[GridRow]) -> str:
    body = "".join(
        f'<tr><td title="{html.escape(row.key)}">{html.escape(row.key[:12])}</td>'
        + "".join(f'<td><img alt="{kind} {html.escape(row.key)}" src="{_png_data_uri(image)}"></td>'
                  for kind, image in (("sketch", row.line), ("hints", hint_picture(row.line, row.hint)), ("output", row.output), ("truth", row.truth)))
        + "</tr>"
        for row in rows
    )
    return (f'<h3>{html.escape(title)}</h3><table class="grid" id="{html.escape(grid_id)}"><thead><tr><th>key</th><th>sketch</th>'
            f"<th>hints</th><th>output</th><th>truth</th></tr></thead><tbody>{body}</tbody></table>")


def side_by_side_rows(report: dict) -> tuple[list[str], list[list[str]]]:
    """The Lee & Lee layout: one row per (hint setting, metric), one column per line source (plain text)."""
    lines = sections(report)
    headers = ["hints", "metric", *lines]
    rows = [["", "samples scored", *(str(section["samples"]) for section in lines.values())]]
    settings = list(dict.fromkeys(setting for section in lines.values() for setting in section["settings"]))
    for setting in settings:
        entries = [section["settings"].get(setting) or {} for section in lines.values()]
        for path, metric, _, lower_better, pattern in COMPARED:
            if all(lookup(entry, path) is None for entry in entries):
                continue  # not computed anywhere: the notes say why
            if path == ("fid",):
                metric = next((entry["label"] for entry in entries if entry.get("label")), metric)
            arrow = " (lower is better)" if lower_better else " (higher is better)"
            cells = [_with_spread(entry, path, pattern) if lookup(entry, path) is not None else _missing(entry, path) for entry in entries]
            rows.append([setting, metric + arrow, *cells])
    return headers, rows


def _missing(entry: dict, path: tuple[str, ...]) -> str:
    """Why a number is not in an entry, as plain text."""
    if not entry:
        return "n/a: not scored"
    reason = (entry.get("not_computed") or {}).get(path[0])
    if reason:
        return f"n/a: {reason}"
    if path[0] == "containment" and entry.get("containment"):
        return "n/a: no hint colour appears in the outputs"
    if path[0] in ("adherence", "containment") and not entry.get(path[0]) and entry.get("samples"):
        return "n/a: no hints"
    return "n/a"


def _side_by_side(report: dict) -> str:
    headers, rows = side_by_side_rows(report)
    return _table([html.escape(h) for h in headers], [[html.escape(cell) for cell in row] for row in rows], "lines", text_columns=2)


def _source_section(report: dict, source: str, section: dict, grids: dict[str, list[GridRow]], several: bool) -> str:
    """One line source's tables and grids; ids carry the source's name when the report has several."""
    suffix = f"-{source}" if several else ""
    missing = (section.get("unscored") or {}).get("samples", [])
    parts = []
    if several:
        parts.append(f"<h2>Lines: {html.escape(source)}</h2><p>{html.escape(section.get('label', source))}: {section['samples']} of the {report['samples']} samples scored"
                     + (f" ({html.escape(_reason_counts(missing))})" if missing else "") + ".</p>")
    if missing:
        rows = [[html.escape(s["key"]), html.escape(s["reason"]), html.escape(s["detail"])] for s in missing]
        parts.append(f'<h3>Not scored with {html.escape(source)} lines</h3><p class="note">{len(missing)} samples have no usable {html.escape(source)} line art; '
                     f"the {html.escape(source)} scores leave them out.</p>{_table(['key', 'reason', 'detail'], rows, f'unscored-lines{suffix}')}")
    heading = "h3" if several else "h2"
    parts.append(f"<{heading}>Distribution scores</{heading}>")
    parts.append(_table(["hints", "samples", "metric", "value (lower is better)", "KID (lower is better)"], _distribution_rows(section), f"distribution{suffix}"))
    parts.append(f"<{heading}>Per-image scores</{heading}>")
    parts.append(_table(["hints", "PSNR dB (higher is better)", "SSIM (higher is better)", "hint error CIEDE2000: mean / median / p90 (lower is better)",
                         "colour containment (higher is better)"], _image_rows(section), f"per-image{suffix}"))
    if grids:
        parts.append(f"<{heading}>Samples</{heading}>")
        parts += [_grid(f"{source}, {setting}" if several else setting, f"grid{suffix}-{setting}", rows) for setting, rows in grids.items()]
    return "\n".join(parts)


def render_html(report: dict, grids: dict[str, dict[str, list[GridRow]]]) -> str:
    name = html.escape(report["name"])
    lines = sections(report)
    several = len(lines) > 1
    scored = [section["samples"] for section in lines.values() if section["samples"]]
    small = bool(scored) and min(scored) < (report.get("feature_dim") or 0) and any(entry.get("fid") is not None for _, _, entry in _entries(report))
    caution = (f'<p class="note">{min(scored) if scored else 0} samples is fewer than the {report.get("feature_dim")} feature dimensions: '
               "the Frechet distances are biased upwards and only comparable with runs of the same sample count; KID is unbiased.</p>") if small else ""
    notes = "".join(f'<p class="note">{html.escape(note)}</p>' for note in [*filter(None, [fid_impl_note(report), repeats_note(report)]), *not_computed_notes(report)])
    overview = ""
    if several:
        described = ", ".join(f"{source} ({section.get('label', source)})" for source, section in lines.items())
        overview = (f'<h2>Line sources side by side</h2><p class="note">The same checkpoints and hints on each line source: {html.escape(described)}.</p>'
                    f"{_side_by_side(report)}{caution}{notes}")
    body = "\n".join(_source_section(report, source, section, grids.get(source, {}), several) for source, section in lines.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pipe eval: {name}</title><style>{STYLE}</style></head>
<body>
<h1>pipe eval: {name}</h1>
<p>{scored_text(report)} of split <b>{html.escape(report['config']['split'])}</b>, created {html.escape(report['created'])} by pipe {html.escape(report['pipe_version'])}.</p>
{_unscored_section(report)}
{overview}
{body}
{"" if several else caution + notes}
<p class="note">Hint error: CIEDE2000 between each hint pixel's colour and the output's mean colour within {report['config']['window_radius']} pixels of it
(the truth itself scores above 0 where the window takes in texture or an edge: that is the floor).
Colour containment: 1 minus the mean share of a hint's colour that the output puts outside the hint's line-bounded region, where the truth does not have it either
(CIE76 tolerance {report['config']['colour_tolerance']}, line pixels: grey below {report['config']['line_threshold']}).</p>
<h2>Run</h2>
{_table(["setting", "value"], _config_rows(report["config"]), "config")}
</body></html>
"""


def console_cell(entry: dict, path: tuple[str, ...], pattern: str) -> str:
    """A console cell: the number, `mean±spread` with repeats."""
    value = lookup(entry, path)
    if value is None:
        return "n/a"
    spread = _spread(entry, path)
    return pattern.format(value) + (f"\u00b1{pattern.format(spread)}" if spread is not None else "")


def summary_table(report: dict) -> Table | Group:
    """The report's headline numbers: one row per hint setting, or with several line sources one row
    per (setting, metric) and one column per source (the Lee & Lee layout); then the notes and a line
    per unscored sample, if any."""
    lines = sections(report)
    if len(lines) > 1:
        headers, rows = side_by_side_rows(report)
        table = Table(title=f"{report['name']}: {scored_text(report)}, side by side by line source")
        for header in headers:
            table.add_column(header, justify="left" if header in ("hints", "metric") else "right")
        for row in rows:
            table.add_row(*row)
    else:
        ((source, section),) = lines.items()
        table = Table(title=f"{report['name']}: {scored_text(report)}" + (f" ({source} lines)" if source != "shard" else ""))
        table.add_column("hints")
        table.add_column("FD is")
        for _, _, short, _, _ in COMPARED:
            table.add_column(short, justify="right")
        for setting, entry in section["settings"].items():
            table.add_row(setting, entry["label"], *(console_cell(entry, path, pattern) for path, _, _, _, pattern in COMPARED))
        table.caption = "FD: Frechet distance; dE00: hint error (CIEDE2000); contain: colour containment"
    notes = [Text(note) for note in [*filter(None, [fid_impl_note(report), repeats_note(report)]), *source_notes(report), *not_computed_notes(report)]]
    notes += [Text(f"unscored {s['key']}: {s['reason']} ({s['detail']})") for s in unscored_of(report)]
    return Group(table, *notes) if notes else table
